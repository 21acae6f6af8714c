/* Tests of the handle types beyond TCP: pipes, signals, processes,
 * pollers, filesystem watchers and requests, reverse DNS.  X(name) per
 * test (see test.h). */
X(pipe_echo)
X(pipe_missing_path)
X(pipe_path_in_use)
X(pipe_server_file_removal)
X(pipe_close_in_callbacks)
X(process_pipe_echo)
X(process_exit_status_and_signal)
X(process_exec_failure)
X(process_stdio_file_and_fd)
X(process_reaped_after_loop_free)
X(process_close_in_callbacks)
