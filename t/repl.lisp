;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; repl.lisp --- cl-async-repl: the event thread, forms handed to it and
;;;; back, errors, cancel, stop and start, the REPL hooks; and a real
;;;; terminal SBCL REPL, driven through a pipe, typing a TLS connect.

(in-package #:cl-async-ssl-test)

(def-suite repl :in cl-async-ssl-test
  :description "cl-async-repl: forms typed at the REPL run in the event thread.")
(in-suite repl)

(defun run-repl-tests ()
  "What (asdf:test-system :cl-async-repl) runs."
  (run-suites 'repl))

;;;# Helpers

(defvar *repl-flag* nil "Set by forms and callbacks of the tests.")
(defvar *repl-flag-2* nil "Set by forms and callbacks of the tests.")

(defparameter *repl-wait* 20
  "Seconds a helper waits for a form, a thread or a child's output.")

(defun repl-thread-gone-p ()
  "True once no event thread runs or is finishing."
  (loop :repeat (* 100 *repl-wait*)
        :until (null cl-async-repl::*run*)
        :do (sleep 0.01)
        :finally (return (null cl-async-repl::*run*))))

(defun call-with-async-repl (fn on-startup)
  "Starts the async REPL with its streams bound to a string stream, calls
FN with a function returning the text written so far, and always stops it
(and waits for its thread to end)."
  (let* ((out (make-string-output-stream))
         (text "")
         (lock (bt:make-lock))
         (capture (make-instance 'capture-stream :target out :lock lock)))
    (let ((*standard-output* capture)
          (*error-output* capture)
          (*trace-output* capture)
          (*debug-io* (make-two-way-stream (make-string-input-stream "") capture))
          (*query-io* (make-two-way-stream (make-string-input-stream "") capture)))
      (flet ((output ()
               (bt:with-lock-held (lock)
                 (setf text (concatenate 'string text (get-output-stream-string out))))))
        (unwind-protect
             (progn
               (as-repl:start-async-repl on-startup)
               (funcall fn #'output))
          (when (as-repl:event-thread-running-p)
            (ignore-errors (as-repl:stop-async-repl)))
          (repl-thread-gone-p))))))

(defclass capture-stream (trivial-gray-streams:fundamental-character-output-stream)
  ((target :initarg :target)
   (lock :initarg :lock))
  (:documentation "A character output stream, safe from several threads,
writing to TARGET."))

(defmethod trivial-gray-streams:stream-write-char ((s capture-stream) char)
  (with-slots (target lock) s
    (bt:with-lock-held (lock) (write-char char target)))
  char)

(defmethod trivial-gray-streams:stream-line-column ((s capture-stream))
  nil)

(defmacro with-async-repl ((&key (output (gensym "OUTPUT")) on-startup) &body body)
  "Runs BODY with the async REPL started (its streams captured; (OUTPUT)
gives the text written so far), stopping it afterwards."
  `(call-with-async-repl (lambda (,output)
                           (declare (ignorable ,output))
                           (flet ((,output () (funcall ,output)))
                             (declare (ignorable #',output))
                             ,@body))
                         ,on-startup))

(defun in-thread (fn &key (timeout *repl-wait*))
  "Calls FN in a new thread with its own bindings of the REPL variables;
returns (values :ok VALUE-LIST), (values :error CONDITION) or :timeout (the
thread is then interrupted out of its wait, which abandons its form)."
  (let* ((variables cl-async-repl::*carried-variables*)
         (values (mapcar #'symbol-value variables))
         (thread (bt:make-thread
                  (lambda ()
                    (progv variables values
                      (catch 'timeout
                        (handler-case (list :ok (multiple-value-list (funcall fn)))
                          (error (e) (list :error e))))))
                  :name "repl test waiter"))
         (result (sb-thread:join-thread thread :timeout timeout :default :timeout)))
    (cond ((eq result :timeout)
           (ignore-errors (bt:interrupt-thread thread (lambda () (throw 'timeout :timeout))))
           (sb-thread:join-thread thread :timeout 5 :default nil)
           :timeout)
          (t (values (first result) (second result))))))

(defun eval-form (form &key (timeout *repl-wait*))
  "FORM as the REPL hands it over, from a fresh thread: (values :ok
VALUES), (values :error CONDITION) or :timeout."
  (in-thread (lambda () (cl-async-repl::repl-eval form)) :timeout timeout))

(defun values-of (form &key (timeout *repl-wait*))
  "The values of FORM handed over (a list), or :timeout / the condition."
  (multiple-value-bind (status result) (eval-form form :timeout timeout)
    (case status
      (:ok result)
      (t (or result status)))))

(defun wait-until (predicate &key (timeout *repl-wait*))
  (loop :repeat (* 100 timeout)
        :until (funcall predicate)
        :do (sleep 0.01)
        :finally (return (funcall predicate))))

;;;# Starting, stopping, the event thread

(test start-stop-and-event-thread-running-p
  (is (not (as-repl:event-thread-running-p)) "not running before the test")
  (with-async-repl ()
    (is-true (as-repl:event-thread-running-p))
    (signals error (as-repl:start-async-repl))
    (is (null (as-repl:stop-async-repl)))
    (is (not (as-repl:event-thread-running-p)) "not running once stop returned")
    (is-true (repl-thread-gone-p) "the thread ended")
    (signals error (as-repl:stop-async-repl))))

(test start-prints-and-on-startup-runs-in-the-event-thread
  (let ((where nil))
    (with-async-repl (:output output
                      :on-startup (lambda ()
                                    (setf where (list (bt:thread-name (bt:current-thread))
                                                      (and cl-async-base:*event-base* t)))))
      (is-true (wait-until (lambda () where)))
      (is (equal '("event-thread" t) where))
      (as-repl:stop-async-repl)
      (is (search ";; event thread started." (output)))
      (is (search ";; event thread exited." (output))))))

(test ensure-runs-on-startup-in-the-event-thread-in-both-cases
  "Not running: ENSURE-ASYNC-REPL starts it (ON-STARTUP in the event thread).
Running: it calls ON-STARTUP in the event thread too (upstream called it in
the caller's thread) and returns its values."
  (let ((first-thread nil))
    (unwind-protect
         (let ((*standard-output* (make-broadcast-stream))
               (*debug-io* (make-two-way-stream (make-string-input-stream "")
                                                (make-broadcast-stream))))
           (is (null (multiple-value-list
                      (as-repl:ensure-async-repl
                       (lambda () (setf first-thread (bt:thread-name (bt:current-thread))))))))
           (is-true (as-repl:event-thread-running-p))
           (is-true (wait-until (lambda () first-thread)))
           (is (equal "event-thread" first-thread))
           (is (equal '("event-thread" 2)
                      (multiple-value-list
                       (as-repl:ensure-async-repl
                        (lambda () (values (bt:thread-name (bt:current-thread)) 2))))))
           (is (null (as-repl:ensure-async-repl)) "running, no on-startup: nil"))
      (when (as-repl:event-thread-running-p)
        (as-repl:stop-async-repl))
      (repl-thread-gone-p))))

(test stop-then-start-again
  (dotimes (i 3)
    (with-async-repl ()
      (is (equal '(3) (values-of '(+ 1 2))))
      ;; typed at the REPL: runs in the event thread, which it stops
      (is (equal '(nil) (values-of '(as-repl:stop-async-repl))))
      (is (not (as-repl:event-thread-running-p)))
      (is (null cl-async-repl::*run*) "the REPL waited for the thread to end"))
    (is (not cl-async-base:*safe-sldb-quit-restart*))))

;;;# Forms and their values

(test form-runs-in-the-event-thread-and-returns-its-values
  (with-async-repl ()
    (is (equal '(("event-thread" t))
               (values-of '(list (bt:thread-name (bt:current-thread))
                                 (and cl-async-base:*event-base* t)))))
    (is (equal '(1 2 3) (values-of '(values 1 2 3))))
    (is (equal '() (values-of '(values))))
    (setf *repl-flag* nil)
    (is (equal '(:later)
               (values-of '(progn (as:delay (lambda ()
                                              (setf *repl-flag*
                                                    (bt:thread-name (bt:current-thread))))
                                            :time 0.01)
                                  :later))))
    (is-true (wait-until (lambda () *repl-flag*)))
    (is (equal "event-thread" *repl-flag*)
        "the timer's callback ran in the event thread")))

(test in-package-carries-over-both-ways
  (with-async-repl ()
    (multiple-value-bind (status result)
        (in-thread (lambda ()
                     (let ((*package* (find-package :cl-user)))
                       (cl-async-repl::repl-eval '(in-package :cl-async))
                       (list (package-name *package*)
                             ;; and the REPL thread's package reaches the
                             ;; event thread with every form
                             (let ((*package* (find-package :keyword)))
                               (cl-async-repl::repl-eval '(package-name *package*)))))))
      (is (eq :ok status))
      (is (equal '(("CL-ASYNC" "KEYWORD")) result)))))

(test event-thread-has-its-own-bindings
  "The event thread binds the starting thread's specials: setting one in a
form changes the REPL thread's value (carried back), not the global one."
  (let ((global (sb-ext:symbol-global-value '*print-base*)))
    (with-async-repl ()
      (multiple-value-bind (status result)
          (in-thread (lambda ()
                       (let ((*print-base* 10))
                         (cl-async-repl::repl-eval '(setf *print-base* 16))
                         *print-base*)))
        (is (eq :ok status))
        (is (equal '(16) result) "carried back to the REPL thread"))
      (is (eql global (sb-ext:symbol-global-value '*print-base*))
          "the global value is untouched"))))

;;;# Errors

(test erroring-form-does-not-hang-and-the-repl-goes-on
  (with-async-repl ()
    (multiple-value-bind (status condition) (eval-form '(error "boom ~a" 42))
      (is (eq :error status) "the error reaches the waiting thread")
      (is (typep condition 'simple-error))
      (is (equal "boom 42" (princ-to-string condition))))
    (is (equal '(3) (values-of '(+ 1 2))) "the next form runs")
    (setf *repl-flag* nil)
    (is (equal '(:alive)
               (values-of '(progn (as:delay (lambda () (setf *repl-flag* :fired))
                                            :time 0.01)
                                  :alive))))
    (is-true (wait-until (lambda () (eq :fired *repl-flag*)))
             "the loop still runs")))

(test form-restarts-run-in-the-event-thread
  "The waiting thread sees the form's restarts; choosing one runs it in the
event thread and the form goes on."
  (with-async-repl ()
    (multiple-value-bind (status result)
        (in-thread (lambda ()
                     (handler-bind ((error (lambda (c)
                                             (invoke-restart (find-restart 'use-value c) 21))))
                       (cl-async-repl::repl-eval
                        '(restart-case (error "want a value")
                          (use-value (v) (list (* 2 v) (bt:thread-name (bt:current-thread)))))))))
      (is (eq :ok status))
      (is (equal '((42 "event-thread")) result)))
    (multiple-value-bind (status result)
        (in-thread (lambda ()
                     (handler-bind ((error (lambda (c) (continue c))))
                       (cl-async-repl::repl-eval '(progn (cerror "go on" "stop here") :went-on)))))
      (is (eq :ok status))
      (is (equal '(:went-on) result)))
    (setf *repl-flag* nil)
    (multiple-value-bind (status result)
        (in-thread (lambda ()
                     (handler-bind ((error (lambda (c)
                                             (setf *repl-flag*
                                                   (and (find-restart 'cl-async-util:exit-event-loop c)
                                                        t))
                                             (abort c))))
                       (cl-async-repl::repl-eval '(error "abort me")))))
      (is (eq :ok status) "ABORT aborts the form")
      (is (equal '() result) "an aborted form returns no values")
      (is-true *repl-flag* "EXIT-EVENT-LOOP is offered too"))
    (is (equal '(3) (values-of '(+ 1 2))))))

(test unwinding-form-returns-no-values
  (with-async-repl ()
    (is (equal '() (values-of '(abort))) "(abort) typed at the REPL")
    (is (equal '() (values-of '(invoke-restart 'abort))))
    (is-true (as-repl:event-thread-running-p))
    (is (equal '(3) (values-of '(+ 1 2))))))

(test callback-error-outside-a-form-is-reported-and-the-loop-goes-on
  (with-async-repl (:output output)
    (values-of '(as:delay (lambda () (error "callback boom")) :time 0.01))
    (is-true (wait-until (lambda () (search "invoking restart" (output)))))
    (is (search "callback boom" (output)))
    (is (search "ABORT-CALLBACK" (output)))
    (is (equal '(3) (values-of '(+ 1 2))))))

(test abandoned-form-is-cancelled-in-the-event-thread
  "A waiter interrupted out of its wait (^C then ABORT in a terminal): the
form is unwound in the event thread, and the next form runs at once."
  (with-async-repl ()
    (setf *repl-flag* nil)
    (let ((waiter (bt:make-thread
                   (lambda ()
                     (catch 'cancelled
                       (cl-async-repl::repl-eval '(progn (setf *repl-flag* t) (sleep 60))))
                     :cancelled))))
      (progn
        (is-true (wait-until (lambda () *repl-flag*)))
        (sleep 0.05)
        (bt:interrupt-thread waiter (lambda () (throw 'cancelled nil)))
        (is (eq :cancelled (sb-thread:join-thread waiter :timeout 5 :default :timeout)))
        (let ((start (get-internal-real-time)))
          (is (equal '(3) (values-of '(+ 1 2) :timeout 10)))
          (is (< (- (get-internal-real-time) start) (* 5 internal-time-units-per-second))
              "the sleeping form was cancelled"))))))

(test two-threads-waiting-at-once-lose-no-wake-up
  (with-async-repl ()
    (let* ((threads (loop :for i :below 4
                          :collect (let ((i i))
                                     (bt:make-thread
                                      (lambda ()
                                        (loop :repeat 100
                                              :count (eql (+ i 1)
                                                          (cl-async-repl::repl-eval `(+ ,i 1)))))))))
           (counts (mapcar (lambda (th) (sb-thread:join-thread th :timeout 30 :default :timeout))
                           threads)))
      (is (equal '(100 100 100 100) counts)))))

(test forms-queued-when-the-loop-exits-signal-an-error
  (with-async-repl ()
    (setf *repl-flag* nil)
    (let ((a (bt:make-thread
              (lambda ()
                (cl-async-repl::repl-eval
                 '(progn (as:exit-event-loop)
                         (setf *repl-flag* t)
                         (sleep 0.5)
                         :a))))))
      (is-true (wait-until (lambda () *repl-flag*)))
      (multiple-value-bind (status condition) (eval-form '(+ 1 1) :timeout 10)
        (is (eq :error status) "the queued form's waiter is woken with an error")
        (is (typep condition 'cl-async-repl::form-not-evaluated)))
      (is (eq :a (sb-thread:join-thread a :timeout 10 :default :timeout)))
      (is (not (as-repl:event-thread-running-p))))))

(test exit-event-loop-typed-at-the-repl-stops-cleanly
  (let ((original sb-int:*repl-read-form-fun*))
    (with-async-repl ()
      (is-true cl-async-base:*safe-sldb-quit-restart*)
      (is (not (eq original sb-int:*repl-read-form-fun*)) "the terminal hook is in")
      (is (equal '(nil) (values-of '(progn (as:exit-event-loop) nil))))
      (is (not (as-repl:event-thread-running-p)))
      (is (null cl-async-repl::*run*) "the thread ended")
      (is (not cl-async-base:*safe-sldb-quit-restart*) "the quit restart is cleared")
      (is (eq original sb-int:*repl-read-form-fun*) "the terminal hook is out")
      (is (equal '(3) (values-of '(+ 1 2))) "forms run here again"))))

;;;# The REPL hooks

(test terminal-hook-wraps-forms-and-is-restored
  (let ((original sb-int:*repl-read-form-fun*))
    (with-async-repl ()
      (let ((form (funcall sb-int:*repl-read-form-fun*
                           (make-string-input-stream "(bt:thread-name (bt:current-thread))")
                           (make-broadcast-stream))))
        (is (not (equal form '(bt:thread-name (bt:current-thread)))) "wrapped")
        (multiple-value-bind (status result)
            (in-thread (lambda ()
                         (let ((- nil))
                           (list (eval form) -))))
          (is (eq :ok status))
          (is (equal '(("event-thread" (bt:thread-name (bt:current-thread)))) result)
              "evaluated in the event thread; - is the form typed"))))
    (is (eq original sb-int:*repl-read-form-fun*) "restored on stop")
    (is (equal '(+ 1 2) (funcall sb-int:*repl-read-form-fun*
                                 (make-string-input-stream "(+ 1 2)")
                                 (make-broadcast-stream))))))

(test swank-eval-hook-installed-and-removed
  "With a SWANK package (a stand-in here, when SLIME is not loaded), the
async REPL puts its hook on SWANK::*SLIME-REPL-EVAL-HOOKS* and removes it."
  (let* ((made (not (find-package "SWANK")))
         (swank (or (find-package "SWANK") (make-package "SWANK" :use '())))
         (hooks (intern "*SLIME-REPL-EVAL-HOOKS*" swank)))
    (unwind-protect
         (progn
           (unless (boundp hooks) (setf (symbol-value hooks) '()))
           (with-async-repl ()
             (let ((hook (first (symbol-value hooks))))
               (is (eq 'cl-async-repl::swank-eval-hook hook))
               (multiple-value-bind (status result)
                   (in-thread (lambda () (funcall hook '(bt:thread-name (bt:current-thread)))))
                 (is (eq :ok status))
                 (is (equal '("event-thread") result)))))
           (is (not (member 'cl-async-repl::swank-eval-hook (symbol-value hooks)))))
      (when made (delete-package swank)))))

;;;# A terminal SBCL REPL in a child process

(defstruct child
  process
  (text (make-array 0 :element-type 'character :adjustable t :fill-pointer 0))
  (lock (bt:make-lock "child output"))
  reader
  (mark 0))

(defun start-child ()
  "A `sbcl' REPL whose stdin is a pipe we write to; its stdout and stderr
are collected by a reader thread."
  (let* ((process (uiop:launch-program
                   (list "sbcl" "--noinform" "--no-sysinit" "--no-userinit")
                   :input :stream :output :stream :error-output :output))
         (child (make-child :process process)))
    (setf (child-reader child)
          (bt:make-thread
           (lambda ()
             (let ((in (uiop:process-info-output process)))
               (handler-case
                   (loop :for c := (read-char in nil)
                         :while c
                         :do (bt:with-lock-held ((child-lock child))
                               (vector-push-extend c (child-text child))))
                 (error () nil))))
           :name "child output"))
    child))

(defun child-output (child)
  (bt:with-lock-held ((child-lock child))
    (copy-seq (child-text child))))

(defun child-type (child line)
  "Types LINE (and a newline) at the child's REPL."
  (let ((in (uiop:process-info-input (child-process child))))
    (write-line line in)
    (finish-output in)))

(defun child-expect (child &rest strings)
  "Waits (at most *REPL-WAIT* seconds, or 300 for loading) until each of
STRINGS appears, in order, after the mark; moves the mark past the last.
True if they all did."
  (let ((timeout (if (eq (first strings) :loading) (progn (pop strings) 300) *repl-wait*)))
    (loop :repeat (* 20 timeout)
          :do (let* ((text (child-output child))
                     (pos (child-mark child)))
                (when (loop :for s :in strings
                            :always (setf pos (let ((p (search s text :start2 pos)))
                                                (and p (+ p (length s))))))
                  (setf (child-mark child) pos)
                  (return t))
                (sleep 0.05))
          :finally (return nil))))

(defun stop-child (child)
  "Closes the child's stdin (its REPL exits at end of file), kills it if it
has not exited within 20 s, and reaps it."
  (let ((process (child-process child)))
    (ignore-errors (close (uiop:process-info-input process)))
    (loop :repeat 400 :while (uiop:process-alive-p process) :do (sleep 0.05))
    (when (uiop:process-alive-p process)
      (uiop:terminate-process process :urgent t))
    (prog1 (uiop:wait-process process)
      (sb-thread:join-thread (child-reader child) :timeout 10 :default nil))))

(defun call-with-child (fn)
  (let ((child (start-child)))
    (unwind-protect (funcall fn child)
      (stop-child child))))

(defmacro with-child ((child) &body body)
  `(call-with-child (lambda (,child) ,@body)))

(defun child-load (child &rest systems)
  (child-type child "(require :asdf)")
  (child-type child (format nil "(push ~s asdf:*central-registry*)"
                            (namestring (asdf:system-source-directory :cl-async-repl))))
  (dolist (system systems)
    (child-type child (format nil "(asdf:load-system ~s)" system)))
  (child-type child "(format t \"~&CASL-~a~%\" :ready)")
  (child-expect child :loading "CASL-READY"))

(test terminal-repl-evaluates-a-tls-connect
  "A terminal SBCL REPL (stdin a pipe): load cl-async-ssl and cl-async-repl,
start the async REPL, make a TLS server and type the seed's tcp-ssl-connect
at the prompt; the read-cb's output and the REPL's values are printed."
  (certs-dir)
  (with-child (child)
    (is-true (child-load child :cl-async-ssl :cl-async-repl) "the systems load:~%~a"
             (child-output child))
    (child-type child "(as-repl:start-async-repl)")
    (is-true (child-expect child ";; event thread started.") "started:~%~a" (child-output child))
    (child-type child "(list :thread (bt:thread-name (bt:current-thread)) :loop (not (null cl-async-base:*event-base*)))")
    (is-true (child-expect child "(:THREAD \"event-thread\" :LOOP T)")
             "a form runs in the event thread:~%~a" (child-output child))
    (child-type child (format nil "(defparameter *server*
  (as-ssl:tcp-ssl-server \"127.0.0.1\" 0
                         (lambda (socket data)
                           (format t \"data: ~~a~~%\" (babel:octets-to-string data))
                           (as:write-socket-data socket \"THIS IS A SECURE LINE!\"
                                                 :write-cb (lambda (socket) (as:close-socket socket))))
                         :event-cb (lambda (ev) (format t \"SSL ev: ~~a~~%\" ev))
                         :certificate ~s :key ~s))"
                              (cert "server-chain.pem") (cert "server.key")))
    (is-true (child-expect child "*SERVER*") "the server:~%~a" (child-output child))
    (child-type child (format nil "(as-ssl:tcp-ssl-connect \"127.0.0.1\" (as:tcp-server-port *server*)
                        (lambda (socket data)
                          (declare (ignore socket))
                          (format t \"GOT: ~~a~~%\" (babel:octets-to-string data)))
                        (lambda (ev)
                          (format t \"EV: ~~a~~%\" ev)
                          (as:close-tcp-server *server*))
                        :read-timeout 3
                        :ca-file ~s
                        :data (format nil \"GET /~~c~~c\" #\\return #\\newline))"
                              (cert "ca.pem")))
    (is-true (child-expect child "#<CL-ASYNC-SSL:SSL-SOCKET" "GOT: THIS IS A SECURE LINE!")
             "the REPL printed the socket, then the read-cb the reply:~%~a"
             (child-output child))
    (is (search "data: GET /" (child-output child)) "the server's read-cb ran")
    (child-type child "(as-repl:stop-async-repl)")
    (is-true (child-expect child ";; event thread exited." "NIL")
             "stopped:~%~a" (child-output child))
    (child-type child "(list :thread (bt:thread-name (bt:current-thread)) (as-repl:event-thread-running-p))")
    (is-true (child-expect child "(:THREAD \"main thread\" NIL)")
             "forms run in the REPL thread again:~%~a" (child-output child))))

(test terminal-repl-recovers-from-errors-and-interrupts
  "A terminal SBCL REPL: an erroring form opens SBCL's debugger in the REPL
thread, and ABORT returns to the REPL; a form's restart runs in the event
thread; ^C on a long form, then ABORT, cancels it; a callback error is
reported; (as:exit-event-loop) stops the async REPL; it starts again."
  (with-child (child)
    (is-true (child-load child :cl-async-repl) "the system loads:~%~a" (child-output child))
    (child-type child "(as-repl:start-async-repl)")
    (is-true (child-expect child ";; event thread started."))
    (child-type child "(error \"boom ~a\" 42)")
    ;; SBCL's debugger discards input typed ahead: wait for its prompt
    (is-true (child-expect child "debugger invoked" "boom 42" "0] ")
             "the debugger, in the REPL thread:~%~a" (child-output child))
    (is (search "Abort the form in the event thread" (child-output child)))
    (child-type child "abort")
    (child-type child "(list :after-error (bt:thread-name (bt:current-thread)))")
    (is-true (child-expect child "(:AFTER-ERROR \"event-thread\")")
             "the REPL goes on after ABORT:~%~a" (child-output child))
    (child-type child "(restart-case (error \"pick me\") (continue () (list :continued (bt:thread-name (bt:current-thread)))))")
    (is-true (child-expect child "pick me" "0] "))
    (child-type child "continue")
    (is-true (child-expect child "(:CONTINUED \"event-thread\")")
             "CONTINUE ran in the event thread:~%~a" (child-output child))
    (child-type child "(progn (format t \"~&SLEEPING~%\") (sleep 60))")
    (is-true (child-expect child "SLEEPING"))
    (sleep 0.2)
    (uiop:run-program (list "kill" "-INT" (princ-to-string (uiop:process-info-pid (child-process child)))))
    (is-true (child-expect child "Interactive interrupt" "0] ")
             "^C opens the debugger:~%~a" (child-output child))
    (child-type child "abort")
    (child-type child "(list :after-interrupt (bt:thread-name (bt:current-thread)))")
    (is-true (child-expect child "(:AFTER-INTERRUPT \"event-thread\")")
             "the sleeping form was cancelled:~%~a" (child-output child))
    (child-type child "(as:delay (lambda () (error \"callback boom\")) :time 0.05)")
    (is-true (child-expect child "callback boom" "invoking restart ABORT-CALLBACK")
             "a callback error is reported:~%~a" (child-output child))
    (child-type child "(as:exit-event-loop)")
    (is-true (child-expect child ";; event thread exited."))
    (child-type child "(list :stopped (as-repl:event-thread-running-p) cl-async-base:*safe-sldb-quit-restart* (bt:thread-name (bt:current-thread)))")
    (is-true (child-expect child "(:STOPPED NIL NIL \"main thread\")")
             "(as:exit-event-loop) stopped it cleanly:~%~a" (child-output child))
    (child-type child "(as-repl:start-async-repl)")
    (is-true (child-expect child ";; event thread started."))
    (child-type child "(list :restarted (bt:thread-name (bt:current-thread)))")
    (is-true (child-expect child "(:RESTARTED \"event-thread\")")
             "started again:~%~a" (child-output child))
    (child-type child "(as-repl:stop-async-repl)")
    (is-true (child-expect child ";; event thread exited."))))
