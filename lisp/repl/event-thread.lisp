;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; event-thread.lisp --- the event thread: its bindings, its loop, its
;;;; notifier, and how it starts and stops.
;;;;
;;;; The thread binds, for its whole life, the streams and REPL variables
;;;; of the thread that started it (PROGV: its own bindings, so nothing it
;;;; sets reaches another thread's global value), then runs
;;;; (as:with-event-loop () ...) with a notifier that serves the queue.
;;;; Stopping -- STOP-ASYNC-REPL, (as:exit-event-loop) typed at the REPL,
;;;; or the loop ending for any reason -- goes through BEGIN-STOPPING:
;;;; forms are no longer taken, queued ones are answered "not run", the
;;;; REPL hooks are removed and *SAFE-SLDB-QUIT-RESTART* is cleared.

(in-package #:cl-async-repl)

(defun begin-stopping (run)
  "RUN takes no more forms; its queued forms are answered \"not run\"; the
REPL hooks go and *SAFE-SLDB-QUIT-RESTART* is cleared.  Any thread, any
number of times."
  (with-state-lock ()
    (when (member (run-state run) '(:starting :running))
      (setf (run-state run) :stopping))
    (reject-queued-locked run)
    (when (eq *run* run)
      (uninstall-hooks)
      (setf cl-async-base:*safe-sldb-quit-restart* nil))))

(defun serve (run)
  "The notifier's callback: runs the queued forms, one at a time, then
exits the loop if a stop was asked for from another thread."
  (loop :for request := (take-request run)
        :while request
        :do (run-request request))
  (when (and (bt:with-lock-held (*lock*) (run-stop-requested run))
             (not (loop-exiting-p)))
    (as:exit-event-loop)))

(defun loop-exited (run)
  "The loop's exit callback (in the event thread, the loop still current)."
  (begin-stopping run)
  (let ((notifier (with-state-lock () (shiftf (run-notifier run) nil))))
    (when (and notifier (not (as:notifier-freed-p notifier)))
      (as:free-notifier notifier))))

(defun thread-finished (run)
  "The last thing the event thread does, however it ends."
  (begin-stopping run)
  (ignore-errors
   (format *debug-io* "~&;; event thread exited.~%")
   (finish-output *debug-io*))
  (with-state-lock ()
    (setf (run-state run) :finished)
    (bt:condition-notify (run-started run))
    (when (eq *run* run)
      (setf *run* nil))))

(defun event-thread-main (run on-startup variables values)
  (progv variables values
    (unwind-protect
         (block main
           (with-state-lock ()
             (setf (run-thread run) (bt:current-thread)))
           ;; A failure before the loop takes forms ends the thread and is
           ;; reported by START-EVENT-THREAD; later errors are the loop's.
           (handler-bind ((error (lambda (e)
                                   (when (eq (run-state run) :starting)
                                     (setf (run-failure run) e)
                                     (return-from main)))))
             (as:with-event-loop ()
               (as:add-event-loop-exit-callback (lambda () (loop-exited run)))
               (let ((notifier (as:make-notifier (lambda () (serve run))
                                                 :single-shot nil)))
                 (format *debug-io* "~&;; event thread started.~%")
                 (finish-output *debug-io*)
                 (with-state-lock ()
                   (setf (run-notifier run) notifier)
                   (when (eq (run-state run) :starting)
                     (setf (run-state run) :running))
                   (bt:condition-notify (run-started run))))
               (when on-startup
                 (funcall on-startup)))))
      (thread-finished run))))

(defun start-event-thread (on-startup)
  "Starts the event thread (waiting first for a previous one to end) and
installs the REPL hooks; returns once the loop takes forms."
  (let ((old (bt:with-lock-held (*lock*) *run*)))
    (when old
      (when (member (run-state old) '(:starting :running))
        (error "cl-async-repl: event thread already started (see ~
                ENSURE-ASYNC-REPL and EVENT-THREAD-RUNNING-P)."))
      (unless (wait-for-thread-end old)
        (error "cl-async-repl: the previous event thread has not exited ~
                yet (a form may still be running in it); try again."))))
  (let* ((run (make-run))
         (swank-variable (swank-hooks-variable))
         (variables (thread-variables))
         (values (mapcar #'symbol-value variables)))
    ;; No SLIME debugger: callback errors are reported, not debugged.
    (unless *debugger-hook*
      (push 'sb-ext:*invoke-debugger-hook* variables)
      (push #'report-and-abort-callback values))
    (with-state-lock ()
      (when *run*
        (error "cl-async-repl: event thread already started."))
      (setf *run* run))
    (handler-bind ((error (lambda (e)
                            (declare (ignore e))
                            (with-state-lock ()
                              (when (and (eq *run* run) (null (run-thread run)))
                                (setf *run* nil))))))
      (setf (run-thread run)
            (bt:make-thread (lambda ()
                              (event-thread-main run on-startup variables values))
                            :name "event-thread")))
    (bt:with-lock-held (*lock*)
      (loop :while (eq (run-state run) :starting)
            :do (bt:condition-wait (run-started run) *lock*)))
    (let ((running (with-state-lock ()
                     (when (eq (run-state run) :running)
                       (setf cl-async-base:*safe-sldb-quit-restart* t)
                       (install-hooks swank-variable)
                       t))))
      (unless running
        (wait-for-thread-end run)
        (when (run-failure run)
          (error "cl-async-repl: the event thread could not start its loop: ~a"
                 (run-failure run)))))
    (values)))

(defun stop-event-thread ()
  "Stops the running event thread (see STOP-ASYNC-REPL)."
  (let ((run nil) (notifier nil))
    (with-state-lock ()
      (setf run *run*)
      (unless (and run (eq (run-state run) :running))
        (error "cl-async-repl: event thread not started."))
      (setf (run-stop-requested run) t
            notifier (run-notifier run))
      ;; Forms paused in a debugger hand-over are aborted: the loop can end.
      (dolist (request (run-debugging run))
        (setf (request-decision request) '(:abort)))
      (bt:condition-notify (run-wakeup run)))
    (begin-stopping run)
    (if (eq (bt:current-thread) (run-thread run))
        (unless (loop-exiting-p)
          (as:exit-event-loop))
        (progn
          (handler-case (as:trigger-notifier notifier)
            (error () nil))
          (wait-for-thread-end run)))
    nil))
