/* Tests of the handle types beyond TCP: pipes, signals, processes,
 * pollers, filesystem watchers and requests, reverse DNS.  X(name) per
 * test (see test.h). */
X(signal_number_by_name)
X(signal_refused)
X(signal_delivered_and_closed_in_callback)
X(signal_disposition_restored)
X(signal_two_watchers_one_signal)
X(signal_untouched_without_watchers)
X(signal_new_watcher_after_close)
