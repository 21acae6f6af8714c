;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; loop.lisp --- the loop (run, stop, free, stats), timers, notifiers
;;;; and DNS lookups.

(in-package #:cl-async-ffi)

;;;# Loop

(defc %loop-new "casl_loop_new" :int (out :pointer) (cbs :pointer))
(cffi:defcfun ("casl_loop_run_once" %raw-loop-run-once) :int
  (loop :pointer) (max-wait-ms :uint64))

(defconstant +run-done+ 0 "CASL_RUN_DONE.")
(defconstant +run-more+ 1 "CASL_RUN_MORE.")
(defconstant +run-stopped+ 2 "CASL_RUN_STOPPED.")

(defun loop-run-once (loop max-wait-ms)
  "One iteration of LOOP, waiting at most MAX-WAIT-MS: +run-more+,
+run-done+, +run-stopped+ or a negative code.  Interrupts are deferred
while C runs and allowed again inside callbacks."
  (let ((*callback-interrupts* sb-sys:*allow-with-interrupts*))
    (sb-sys:without-interrupts
      (%raw-loop-run-once loop max-wait-ms))))
(defc loop-stop "casl_loop_stop" :void (loop :pointer))
(defc loop-free "casl_loop_free" :void (loop :pointer))
(defc %loop-alive "casl_loop_alive" :int (loop :pointer))
(defc loop-now "casl_loop_now" :uint64 (loop :pointer))
(defc %loop-describe "casl_loop_describe" :size
  (loop :pointer) (buf :pointer) (len :size))
(defc handle-ref "casl_handle_ref" :void (handle :pointer) (ref :boolean))
(defc handle-close "casl_handle_close" :void (handle :pointer))

(defun loop-new ()
  "Creates a loop wired to the callbacks above.  Returns the loop pointer
and 0, or nil and a negative code."
  (cffi:with-foreign-objects ((out :pointer) (cbs '(:struct casl-callbacks)))
    (macrolet ((set-cb (slot name)
                 `(setf (cffi:foreign-slot-value cbs '(:struct casl-callbacks)
                                                 ',slot)
                        (cffi:callback ,name))))
      (set-cb timer %on-timer) (set-cb notify %on-notify)
      (set-cb closed %on-closed) (set-cb accept %on-accept)
      (set-cb connect %on-connect) (set-cb read %on-read)
      (set-cb written %on-written) (set-cb error %on-error)
      (set-cb dns %on-dns) (set-cb sni %on-sni)
      (set-cb signal %on-signal) (set-cb exit %on-exit)
      (set-cb poll %on-poll) (set-cb fs-event %on-fs-event)
      (set-cb fs %on-fs) (set-cb nameinfo %on-nameinfo))
    (let ((rc (%loop-new out cbs)))
      (if (zerop rc)
          (values (cffi:mem-ref out :pointer) 0)
          (values nil rc)))))

(defun loop-alive-p (loop)
  "True while LOOP has active referenced handles or queued events."
  (/= 0 (%loop-alive loop)))

;;; The layout of casl_stats, in the order of the C declaration.
(cffi:defcstruct casl-stats
  (timers :int64) (notifiers :int64) (servers :int64)
  (connections-in :int64) (connections-out :int64) (tls :int64)
  (dns-queries :int64) (handles :int64) (queued-events :int64)
  (write-queue :int64) (pipes :int64) (signals :int64) (processes :int64)
  (pollers :int64) (fs-watchers :int64) (fs-requests :int64))

(defc %loop-stats "casl_loop_stats" :void (loop :pointer) (out :pointer))

(defparameter *stats-fields*
  '(timers notifiers servers connections-in connections-out tls dns-queries
    handles queued-events write-queue pipes signals processes pollers
    fs-watchers fs-requests))

(defun loop-stats (loop)
  "The loop's counters as a plist (:timers :notifiers :servers
:connections-in :connections-out :tls :dns-queries :handles :queued-events
:write-queue :pipes :signals :processes :pollers :fs-watchers
:fs-requests)."
  (cffi:with-foreign-object (st '(:struct casl-stats))
    (%loop-stats loop st)
    (loop :for field :in *stats-fields*
          :collect (intern (symbol-name field) :keyword)
          :collect (cffi:foreign-slot-value st '(:struct casl-stats) field))))

(defun loop-describe (loop)
  "One line per open handle of LOOP."
  (let ((need (%loop-describe loop (cffi:null-pointer) 0)))
    (cffi:with-foreign-pointer-as-string (buf need)
      (%loop-describe loop buf need))))

;;;# Timers, notifiers, DNS

(defc %timer-new "casl_timer_new" :int (loop :pointer) (id :int64) (out :pointer))
(defc timer-start "casl_timer_start" :int
  (timer :pointer) (timeout-ms :uint64) (repeat-ms :uint64))
(defc timer-stop "casl_timer_stop" :int (timer :pointer))
(defc timer-close "casl_timer_close" :void (timer :pointer))
(defc %notifier-new "casl_notifier_new" :int
  (loop :pointer) (id :int64) (out :pointer))
(defc notifier-send "casl_notifier_send" :int (notifier :pointer))
(defc notifier-close "casl_notifier_close" :void (notifier :pointer))
(defc %dns-lookup "casl_dns_lookup" :int
  (loop :pointer) (id :int64) (host nullable-string) (family :int))
(defc dns-reverse "casl_dns_reverse" :int
  (loop :pointer) (id :int64) (ip nullable-string))

(defun timer-new (loop id)
  "A stopped timer with ID: (values pointer code)."
  (with-out-pointer (out) (%timer-new loop id out)))

(defun notifier-new (loop id)
  "A notifier with ID: (values pointer code)."
  (with-out-pointer (out) (%notifier-new loop id out)))

(defun dns-lookup (loop id host family)
  "Starts resolving HOST (FAMILY 0, 4 or 6); the dns event carries ID."
  (%dns-lookup loop id host family))
