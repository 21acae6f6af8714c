;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; eval.lisp --- a form's trip to the event thread and back.
;;;;
;;;; The waiting thread (the REPL's) queues a REQUEST, triggers the event
;;;; thread's notifier and waits on the request's own condition variable.
;;;; The event thread takes requests one at a time (the notifier callback,
;;;; event-thread.lisp) and runs each with RUN-REQUEST, whose cleanup always
;;;; answers: the form's values, or "aborted" (no values) when it unwound.
;;;; A loop that exits answers every request still queued with "not run",
;;;; which the waiter signals as FORM-NOT-EVALUATED.  So no waiter is left
;;;; waiting, whatever the form or the loop does.
;;;;
;;;; Errors.  A form that would enter the debugger in the event thread
;;;; (an unhandled ERROR, CERROR, BREAK, INVOKE-DEBUGGER) hands the
;;;; debugger over instead: the event thread stops there, frames intact,
;;;; and sends the condition and a description of the restarts the form
;;;; established (plus ABORT and EXIT-EVENT-LOOP, set up around every form)
;;;; to the waiter.  The waiter signals the condition again in its own
;;;; thread with ERROR, with one stand-in restart per restart sent: its
;;;; handlers, and then its debugger (SBCL's terminal debugger, SLDB), see
;;;; the error where the user is.  Choosing a stand-in runs the real
;;;; restart in the event thread, and the form goes on (USE-VALUE,
;;;; CONTINUE of CERROR or BREAK...); leaving the debugger any other way
;;;; (the REPL's own ABORT, SLDB's quit) aborts the form in the event
;;;; thread.  While the debugger is open the loop is paused, as it would be
;;;; with the debugger in the event thread; forms handed over meanwhile (a
;;;; nested REPL in SLDB) run from the paused place.
;;;;
;;;; Cancel.  A waiter that unwinds (^C in the REPL thread, then ABORT)
;;;; abandons its request: dropped if still queued, aborted through the
;;;; debugger hand-over if in the debugger, and if running, the event
;;;; thread is interrupted and unwinds the form (interrupts never land in C
;;;; code: the cl-async core defers them around every foreign call).

(in-package #:cl-async-repl)

;;;# What crosses with each form

(defparameter *stream-variables*
  '(*debug-io* *query-io* *terminal-io* *standard-output* *standard-input*
    *error-output* *trace-output*)
  "Streams the event thread takes from the thread that starts it (its own
bindings, made once at start).")

(defparameter *carried-variables*
  '(*package* *readtable* *read-base* *read-default-float-format* *read-eval*
    *print-array* *print-base* *print-radix* *print-case* *print-circle*
    *print-escape* *print-gensym* *print-level* *print-length* *print-lines*
    *print-miser-width* *print-pretty* *print-readably* *print-right-margin*
    *print-pprint-dispatch* *default-pathname-defaults*)
  "Variables the event thread binds at start to the starting thread's
values, and that cross with every REPL form: before the form the event
thread takes the REPL thread's values, after it the REPL thread takes those
the form changed (IN-PACKAGE carries over, both ways).")

(defparameter *history-variables*
  '(* ** *** / // /// + ++ +++ -)
  "The REPL history variables: bound in the event thread, around each form,
to the REPL thread's values.")

(defun thread-variables ()
  "The variables the event thread binds for its whole life."
  (append *stream-variables* *carried-variables*))

(define-condition form-not-evaluated (error)
  ((form :initarg :form :reader form-not-evaluated-form))
  (:report (lambda (condition stream)
             (let ((*print-length* 5) (*print-level* 3))
               (format stream "cl-async-repl: the event loop exited before ~
                               this form ran; it was not evaluated:~%  ~s"
                       (form-not-evaluated-form condition)))))
  (:documentation "Signalled in the waiting thread when the event loop
exits (or the async REPL is stopped) before a form handed to it ran."))

(defmacro with-state-lock (() &body body)
  "BODY with *LOCK* held and interrupts deferred, so the cancel interrupt
(CANCEL-RUNNING) never unwinds a half-made change of the shared state.
BODY must not wait."
  `(sb-sys:without-interrupts
     (bt:with-lock-held (*lock*)
       ,@body)))

;;;# The waiting side

(defun submit (thunk form)
  "Queues THUNK (a function of the request) for the event thread and wakes
it; returns the REQUEST, or nil when no event thread takes forms or this
is the event thread itself."
  (let ((request nil) (notifier nil))
    (with-state-lock ()
      (let ((run *run*))
        (when (and run (eq (run-state run) :running)
                   (not (eq (bt:current-thread) (run-thread run))))
          (setf request (make-request run thunk form)
                (run-queue run) (nconc (run-queue run) (list request))
                notifier (run-notifier run))
          ;; the event thread may be paused in a debugger hand-over
          (bt:condition-notify (run-wakeup run)))))
    (when request
      ;; Freed meanwhile: the loop is exiting and answers "not run".
      (handler-case (as:trigger-notifier notifier)
        (error () nil)))
    request))

(defun apply-changes (changes)
  (loop :for (variable . value) :in changes
        :do (setf (symbol-value variable) value)))

(defparameter *exit-wait* 10
  "Seconds a thread waits for an exiting event thread to end (after a form
that stopped it, in START-ASYNC-REPL, in STOP-ASYNC-REPL).")

(defun wait-for-thread-end (run)
  "Waits, at most *EXIT-WAIT* seconds, for RUN's thread to end (not from
that thread itself).  True if it has ended."
  (let ((thread (run-thread run)))
    (cond ((null thread) t)
          ((eq thread (bt:current-thread)) nil)
          (t (sb-thread:join-thread thread :timeout *exit-wait* :default nil)
             (not (bt:thread-alive-p thread))))))

(defun wait-if-stopping (run)
  "After a form: if it stopped the loop, waits until the event thread has
ended, so the REPL's next form finds everything settled."
  (when (member (bt:with-lock-held (*lock*) (run-state run))
                '(:stopping :finished))
    (wait-for-thread-end run)))

(defun await (request)
  "Waits for REQUEST's outcome and returns its values; enters the
debugger here for a form that would have entered it in the event thread.
Leaving by a non-local exit abandons the request."
  (let ((finished nil))
    (unwind-protect
         (loop
           (let ((message (bt:with-lock-held (*lock*)
                            (loop :until (request-message request)
                                  :do (bt:condition-wait (request-wakeup request)
                                                         *lock*))
                            (shiftf (request-message request) nil))))
             (ecase (first message)
               (:values
                (setf finished t)
                (apply-changes (third message))
                (wait-if-stopping (request-run request))
                (return (values-list (second message))))
               (:aborted
                (setf finished t)
                (apply-changes (second message))
                (wait-if-stopping (request-run request))
                (return (values)))
               (:not-run
                (setf finished t)
                (error 'form-not-evaluated :form (request-form request)))
               (:debug
                (destructuring-bind (condition restarts changes) (rest message)
                  (apply-changes changes)
                  (setf (request-condition request) condition
                        (request-restarts request) restarts)
                  (debug-form-here request))))))
      (unless finished
        (abandon request)))))

(defun make-stand-in (request index name report interactive)
  "A restart of the waiting thread that invokes restart number INDEX of
REQUEST's form in the event thread."
  (sb-kernel:make-restart
   name
   (lambda (&rest args)
     (with-state-lock ()
       (setf (request-decision request) (list :invoke index args))
       (bt:condition-notify (run-wakeup (request-run request))))
     (throw request nil))
   (lambda (stream) (write-string report stream))
   ;; Asks for the restart's arguments here, where the user is.
   interactive))

(defun debug-form-here (request)
  "Signals the condition of REQUEST's form, which waits in the debugger of
the event thread, in this thread with ERROR, with a stand-in for each
restart the form offers there (innermost first).  Returns once a stand-in
was chosen."
  (catch request
    (let ((sb-kernel:*restart-clusters*
            (cons (loop :for (index name report interactive)
                          :in (request-restarts request)
                        :collect (make-stand-in request index name report
                                                interactive))
                  sb-kernel:*restart-clusters*)))
      (error (request-condition request)))))

(defun abandon (request)
  "REQUEST's waiter leaves without its outcome: the form is dropped or
aborted in the event thread."
  (let ((interrupt nil)
        (run (request-run request)))
    (with-state-lock ()
      (case (request-state request)
        (:queued
         (setf (run-queue run) (remove request (run-queue run))))
        (:running
         (setf interrupt t))
        (:debugging
         (setf (request-decision request) '(:abort))
         (bt:condition-notify (run-wakeup run))))
      (setf (request-state request) :abandoned))
    (when interrupt
      (let ((thread (run-thread run)))
        (when (and thread (bt:thread-alive-p thread))
          (handler-case (bt:interrupt-thread thread #'cancel-running request)
            (error () nil)))))))

(defun repl-eval (form)
  "Evaluates FORM for the REPL: in the event thread (returning its values
here) while the async REPL runs, else in this thread."
  (let ((request (submit (form-thunk form) form)))
    (if request
        (await request)
        (eval form))))

(defun call-in-event-thread (function)
  "Calls FUNCTION (no arguments) in the event thread and returns its values
here, with errors handed over as for REPL forms.  Signals FORM-NOT-EVALUATED
if no event thread takes it; in the event thread, just calls it."
  (let ((run *run*))
    (if (and run (eq (bt:current-thread) (run-thread run)))
        (funcall function)
        (let ((request (submit (lambda (request)
                                 (run-form request function (constantly '())))
                               function)))
          (if request
              (await request)
              (error 'form-not-evaluated :form function))))))

;;;# The event thread's side

(declaim (ftype function begin-stopping))   ; event-thread.lisp

(defvar *running-requests* '()
  "In the event thread: the requests whose form is running, innermost
first.")

(defvar *debugging-requests* '()
  "In the event thread: (request . restarts) for each form paused in a
debugger hand-over, innermost first.")

(defun cancel-running (request)
  "Run in the event thread by an interrupt from ABANDON: unwinds REQUEST's
form if it still runs."
  (when (and (member request *running-requests*)
             (eq (request-state request) :abandoned))
    (throw request nil)))

(defun loop-exiting-p ()
  "True in the event thread once EXIT-EVENT-LOOP was called on its loop."
  (let ((base cl-async-base:*event-base*))
    (and base (cl-async-ext:loop-exiting base) t)))

(defun run-request (request)
  "Runs REQUEST (taken by TAKE-REQUEST) in the event thread and answers its
waiter, also when the form unwinds."
  (let ((outcome '(:aborted ()))
        (unwound t))
    (unwind-protect
         (progn
           (catch request
             (let ((*running-requests* (cons request *running-requests*)))
               (when (eq (request-state request) :abandoned)
                 (throw request nil))
               (setf outcome (funcall (request-thunk request) request))))
           (setf unwound nil))
      ;; A form run by the notifier's callback (not one run meanwhile from
      ;; a debugger hand-over) that unwinds out of it takes the loop down:
      ;; the thread is being ended (SB-EXT:EXIT typed, ABORT-THREAD).  Like
      ;; EXIT-EVENT-LOOP, that stops the REPL before the waiter is told, so
      ;; it waits for the end and its next form is not queued.
      (when (or (and unwound (null *debugging-requests*))
                (loop-exiting-p))
        (begin-stopping (request-run request)))
      (with-state-lock ()
        (post-locked request outcome)))))

(defun finish-streams ()
  (ignore-errors (finish-output *standard-output*))
  (ignore-errors (finish-output *error-output*)))

(defun run-form (request function changes)
  "Calls FUNCTION for REQUEST in the event thread, with the restarts ABORT
and EXIT-EVENT-LOOP around it and the debugger handed over to the waiter;
returns the outcome message.  CHANGES gives the carried variables the form
changed."
  (let ((outer (compute-restarts)))
    (restart-case
        ;; The form's errors are not the notifier callback's: cl-async's
        ;; callback error handling lets them pass, to the debugger (below).
        (let ((cl-async-util:*passthrough-errors*
                (cons 'error cl-async-util:*passthrough-errors*))
              (sb-ext:*invoke-debugger-hook*
                (lambda (condition hook)
                  (declare (ignore hook))
                  (hand-over-debugger request condition outer changes))))
          (let ((values (multiple-value-list (funcall function))))
            (finish-streams)
            (list :values values (funcall changes))))
      (abort ()
        :report "Abort the form in the event thread (it returns no values)."
        (finish-streams)
        (list :aborted (funcall changes)))
      (cl-async-util:exit-event-loop ()
        :report "Exit the event loop: stop the async REPL (the form returns no values)."
        (as:exit-event-loop)
        (finish-streams)
        (list :aborted (funcall changes))))))

(defun form-thunk (form)
  "Made in the waiting thread: the request thunk that evaluates FORM in the
event thread with this thread's REPL variables."
  (let ((carried (mapcar #'symbol-value *carried-variables*))
        (history (mapcar #'symbol-value *history-variables*)))
    (lambda (request)
      (progv *history-variables* history
        (loop :for variable :in *carried-variables*
              :for value :in carried
              :do (setf (symbol-value variable) value))
        (run-form request
                  (lambda () (eval form))
                  (lambda ()
                    (loop :for variable :in *carried-variables*
                          :for value :in carried
                          :unless (eq (symbol-value variable) value)
                            :collect (cons variable (symbol-value variable)))))))))

(defun describe-restart (index restart)
  (list index (restart-name restart) (princ-to-string restart)
        (sb-kernel::restart-interactive-function restart)))

(defun hand-over-debugger (request condition outer changes)
  "The event thread's debugger during REQUEST's form: sends CONDITION and
the form's restarts (those not in OUTER) to the waiter, then waits for its
choice, running forms handed over meanwhile.  Never returns."
  (let* ((run (request-run request))
         (restarts (remove-if (lambda (r) (member r outer))
                              (compute-restarts condition)))
         (message (list :debug condition
                        (loop :for r :in restarts
                              :for i :from 0
                              :collect (describe-restart i r))
                        (funcall changes))))
    (finish-streams)
    (flet ((offer ()
             (with-state-lock ()
               (if (eq (request-state request) :abandoned)
                   nil
                   (progn (setf (request-state request) :debugging)
                          (pushnew request (run-debugging run))
                          (post-locked request message)
                          t)))))
      (unless (offer)
        (throw request nil))
      (let ((*debugging-requests* (acons request restarts *debugging-requests*)))
        (unwind-protect
             (loop
               (multiple-value-bind (entry decision nested) (wait-for-decision run)
                 (cond (nested (run-request nested))
                       ((eq (first decision) :abort)
                        (throw (car entry) nil))
                       (t
                        (destructuring-bind (index args) (rest decision)
                          (apply #'invoke-restart (nth index (cdr entry)) args))
                        ;; A restart that returned: the form is still in
                        ;; the debugger; offer it again.
                        (unless (and (eq (car entry) request) (offer))
                          (throw (car entry) nil))))))
          (with-state-lock ()
            (setf (run-debugging run) (remove request (run-debugging run)))))))))

(defun wait-for-decision (run)
  "In the event thread, paused in the debugger: waits for a decision on a
paused form (the outermost first; returns its entry and the decision) or a
request to run meanwhile (returned third)."
  (bt:with-lock-held (*lock*)
    (loop
      (let ((entry (find-if (lambda (e) (request-decision (car e)))
                            *debugging-requests* :from-end t)))
        (when entry
          (let ((request (car entry)))
            (setf (run-debugging run) (remove request (run-debugging run)))
            (when (eq (request-state request) :debugging)
              (setf (request-state request) :running))
            (return (values entry (shiftf (request-decision request) nil) nil)))))
      (when (and (eq (run-state run) :running) (run-queue run))
        (let ((nested (pop (run-queue run))))
          (setf (request-state nested) :running)
          (return (values nil nil nested))))
      (bt:condition-wait (run-wakeup run) *lock*))))
