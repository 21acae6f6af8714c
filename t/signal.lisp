;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; signal.lisp --- signal handlers: delivery on the loop thread,
;;;; replacing, freeing, refused signals, and the disposition put back.

(in-package #:cl-async-ssl-test)

(def-suite signals :in cl-async-core
  :description "signal-handler, free-signal-handler, clear-signal-handlers,
the +sig...+ constants.")
(in-suite signals)

(defun getpid ()
  (cffi:foreign-funcall "getpid" :int))

(defun send-signal (signo &optional (pid (getpid)))
  "kill(2): sends SIGNO to PID (this process by default)."
  (assert (zerop (cffi:foreign-funcall "kill" :int pid :int signo :int))))

(defun disposition (signo)
  "SIGNO's disposition as (handler-address flags), read with sigaction(2)
(struct sigaction on Linux x86-64: the handler, a 128-byte mask, the
flags)."
  (cffi:with-foreign-object (sa :char 152)
    (assert (zerop (cffi:foreign-funcall "sigaction" :int signo
                                         :pointer (cffi:null-pointer)
                                         :pointer sa :int)))
    (list (cffi:mem-ref sa :uint64 0) (cffi:mem-ref sa :int 136))))

(defun signal-handles ()
  "How many signal watchers the current loop has open (from
dump-event-loop-status)."
  (let ((out (with-output-to-string (*standard-output*)
               (as:dump-event-loop-status))))
    (loop :for start := 0 :then (+ pos 1)
          :for pos := (search "handle: signal" out :start2 start)
          :while pos :count t)))

(test signal-numbers-are-this-platforms
  (is (= as:+sigint+ sb-unix:sigint))
  (is (= as:+sigterm+ sb-unix:sigterm))
  (is (= as:+sighup+ sb-unix:sighup))
  (is (= as:+sigusr1+ sb-unix:sigusr1))
  (is (= as:+sigusr2+ sb-unix:sigusr2))
  (is (= as:+sigchld+ sb-unix:sigchld))
  (is (= as:+sigbus+ sb-unix:sigbus))
  (is (= as:+sigsys+ sb-unix:sigsys))
  (is (= as:+sigurg+ sb-unix:sigurg))
  (is (= as:+sigio+ sb-unix:sigio))
  (is (= as:+sigstop+ sb-unix:sigstop))
  (is (= as:+sigcont+ sb-unix:sigcont))
  (is (= as:+sigtstp+ sb-unix:sigtstp))
  ;; Linux has no SIGEMT or SIGINFO: placeholders that are no signal.
  (is (= -7 as:+sigemt+))
  (is (= -29 as:+siginfo+)))

(test signal-handler-add-remove
  "A handler keeps the loop alive; freeing it (from a delay) lets the loop
end by itself."
  (let ((start (get-internal-real-time)) (end nil))
    (with-test-loop ()
      (as:signal-handler as:+sigint+ (lambda (sig) (declare (ignore sig))))
      (as:delay (lambda () (as:free-signal-handler as:+sigint+)) :time 0.3))
    (setf end (get-internal-real-time))
    (is (<= 0.28 (/ (- end start) internal-time-units-per-second) 1.5))))

(test signal-runs-on-the-loop-thread
  (let ((got nil) (thread nil) (loop-thread nil))
    (with-test-loop ()
      (setf loop-thread (bt:current-thread))
      (as:signal-handler as:+sigusr1+
                         (lambda (sig)
                           (setf got sig thread (bt:current-thread))
                           (as:free-signal-handler as:+sigusr1+)))
      (as:delay (lambda () (send-signal as:+sigusr1+)) :time 0.02))
    (is (eql as:+sigusr1+ got))
    (is (eq loop-thread thread))))

(test signal-handler-replaces
  "A second signal-handler for the same signal replaces the first: one
watcher, only the new callback runs."
  (let ((first 0) (second 0) (handles nil) (listed nil))
    (with-test-loop ()
      (as:signal-handler as:+sigusr1+ (lambda (sig) (declare (ignore sig))
                                        (incf first)))
      (as:signal-handler as:+sigusr1+ (lambda (sig) (declare (ignore sig))
                                        (incf second)
                                        (as:free-signal-handler as:+sigusr1+)))
      (setf handles (signal-handles)
            listed (copy-list (cl-async-base:event-base-signal-handlers
                               cl-async-base:*event-base*)))
      (as:delay (lambda () (send-signal as:+sigusr1+)) :time 0.02))
    (is (= 0 first))
    (is (= 1 second))
    (is (= 1 handles))
    (is (equal (list as:+sigusr1+) listed))))

(test signal-handler-freed-and-made-again-in-its-callback
  (let ((calls '()))
    (with-test-loop ()
      (as:signal-handler
       as:+sigusr1+
       (lambda (sig) (declare (ignore sig))
         (push :first calls)
         (as:free-signal-handler as:+sigusr1+)
         (as:signal-handler as:+sigusr1+
                            (lambda (sig) (declare (ignore sig))
                              (push :second calls)
                              (as:clear-signal-handlers)))
         (as:delay (lambda () (send-signal as:+sigusr1+)) :time 0.02)))
      (as:delay (lambda () (send-signal as:+sigusr1+)) :time 0.02))
    (is (equal '(:second :first) calls))))

(test signal-handlers-listed-and-cleared
  (let ((listed nil) (after nil))
    (with-test-loop ()
      (as:signal-handler as:+sigusr1+ (lambda (sig) sig))
      (as:signal-handler as:+sighup+ (lambda (sig) sig))
      (setf listed (sort (copy-list (cl-async-base:event-base-signal-handlers
                                     cl-async-base:*event-base*))
                         #'<))
      (as:free-signal-handler as:+sigterm+) ; none: nothing happens
      (as:clear-signal-handlers)
      (setf after (cl-async-base:event-base-signal-handlers
                   cl-async-base:*event-base*)))
    (is (equal (sort (list as:+sighup+ as:+sigusr1+) #'<) listed))
    (is (null after))))

(test signal-handler-errors-go-to-event-cb
  (let ((seen nil))
    (with-test-loop (:catch-app-errors t)
      (as:signal-handler as:+sigusr1+
                         (lambda (sig) (declare (ignore sig))
                           (as:free-signal-handler as:+sigusr1+)
                           (error "in the signal-cb"))
                         :event-cb (lambda (e) (setf seen (princ-to-string e))))
      (as:delay (lambda () (send-signal as:+sigusr1+)) :time 0.02))
    (is (equal "in the signal-cb" seen))))

(test signal-handler-refuses-what-cannot-be-handled
  "Signalled as an EVENT-ERROR even with an event-cb, nothing left behind."
  (let ((messages '()) (handles nil) (listed :unset))
    (with-test-loop ()
      (dolist (signo (list as:+sigkill+ as:+sigstop+ 0 1000 as:+sigemt+
                           as:+siginfo+ as:+sigusr2+ as:+sigsegv+ as:+sigurg+))
        (handler-case (as:signal-handler signo (lambda (s) s)
                                         :event-cb (lambda (e) e))
          (as:event-error (e)
            (push (princ-to-string e) messages))))
      (signals error (as:signal-handler "SIGINT" (lambda (s) s)))
      (setf handles (signal-handles)
            listed (cl-async-base:event-base-signal-handlers
                    cl-async-base:*event-base*)))
    (is (= 9 (length messages)))
    (is (= 0 handles))
    (is (null listed))
    (is (some (lambda (m) (search "SIGKILL" m)) messages))
    (is (some (lambda (m) (search "no SIGEMT" m)) messages))
    (is (some (lambda (m) (search "garbage collection" m)) messages))))

(test signal-handler-needs-a-loop
  (signals error (as:signal-handler as:+sigusr1+ (lambda (s) s)))
  (signals error (as:free-signal-handler as:+sigusr1+)))

(test signal-handler-freed-at-exit
  "A handler left when the loop exits is freed: the disposition is back,
and the next loop starts without it."
  (let ((before (disposition as:+sigusr1+)) (during nil) (later nil))
    (with-test-loop ()
      (as:signal-handler as:+sigusr1+ (lambda (s) s))
      (setf during (disposition as:+sigusr1+))
      (as:delay #'as:exit-event-loop :time 0.02))
    (is (not (equal before during)))
    (is (equal before (disposition as:+sigusr1+)))
    (with-test-loop ()
      (setf later (cl-async-base:event-base-signal-handlers
                   cl-async-base:*event-base*)))
    (is (null later))))

(test no-handler-touches-nothing
  (let ((before (disposition as:+sigint+)))
    (with-test-loop ()
      (as:with-delay (0.01) nil))
    (is (equal before (disposition as:+sigint+)))))

(test sigint-handling-is-sbcls-again-after-free
  "While a SIGINT handler exists the signal is ours; freeing it puts SBCL's
handler back (address and flags), and ^C interrupts Lisp again."
  (let ((sbcl (disposition as:+sigint+)) (ours nil) (freed nil) (got nil))
    (with-test-loop ()
      (as:signal-handler as:+sigint+ (lambda (sig) (setf got sig)
                                       (as:free-signal-handler as:+sigint+)
                                       (setf freed (disposition as:+sigint+))))
      (setf ours (disposition as:+sigint+))
      (as:delay (lambda () (send-signal as:+sigint+)) :time 0.02))
    (is (eql as:+sigint+ got) "the SIGINT reached the handler, not SBCL")
    (is (not (equal sbcl ours)))
    (is (equal sbcl freed))
    (is (equal sbcl (disposition as:+sigint+)))
    (if (eq (bt:current-thread) (sb-thread:main-thread))
        (is (eq :interrupted
                (handler-case (progn (send-signal as:+sigint+)
                                     (loop :repeat 200 :do (sleep 0.01))
                                     :not-interrupted)
                  (sb-sys:interactive-interrupt () :interrupted))))
        (format t "~&;; not in the main thread: ^C itself not tried~%"))))
