;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; signal.lisp --- signal numbers and signal handlers.
;;;;
;;;; A handler is one C signal watcher per signal per loop: its deliveries
;;;; are events, dispatched on the loop thread like any other callback.
;;;; SIGNAL-HANDLER on a signal that already has one swaps the callbacks of
;;;; the same watcher.  The C library saves the signal's disposition before
;;;; its first watcher and puts it back (handler, flags and mask) when its
;;;; last watcher closes, so SBCL's own handlers (^C, SIGTERM) work again;
;;;; a signal nobody watches is never touched.

(in-package #:cl-async)

;;;# Signal numbers

(eval-when (:compile-toplevel :load-toplevel :execute)
  (defparameter *missing-signal-values* '(("SIGEMT" . -7) ("SIGINFO" . -29))
    "Values of the constants for signals a platform may lack (Linux has
neither): the negated BSD numbers, which are no signal anywhere, so they
cannot be mistaken for another signal (upstream's 7 and 29 are SIGBUS and
SIGIO on Linux).  SIGNAL-HANDLER and PROCESS-KILL refuse them."))

(defmacro define-signal-numbers (&rest pairs)
  `(progn
     ,@(loop :for (symbol name) :on pairs :by #'cddr
             :for missing := (cdr (assoc name *missing-signal-values*
                                         :test #'string=))
             :collect
             `(defconstant ,symbol
                (or (cl-async-ffi:signal-number ,name)
                    ,(or missing
                         `(error "cl-async: the C library knows no ~a on ~
                                  this platform." ,name)))
                ,(if missing
                     (format nil "~a on this platform, or ~d where there is ~
                                  none (Linux): a placeholder that is no ~
                                  signal, refused by SIGNAL-HANDLER."
                             name missing)
                     (format nil "The number of ~a on this platform (read ~
                                  from the C library)." name))))))

(define-signal-numbers
  +sighup+ "SIGHUP" +sigint+ "SIGINT" +sigquit+ "SIGQUIT" +sigill+ "SIGILL"
  +sigtrap+ "SIGTRAP" +sigabrt+ "SIGABRT" +sigemt+ "SIGEMT" +sigfpe+ "SIGFPE"
  +sigkill+ "SIGKILL" +sigbus+ "SIGBUS" +sigsegv+ "SIGSEGV" +sigsys+ "SIGSYS"
  +sigpipe+ "SIGPIPE" +sigalrm+ "SIGALRM" +sigterm+ "SIGTERM"
  +sigurg+ "SIGURG" +sigstop+ "SIGSTOP" +sigtstp+ "SIGTSTP"
  +sigcont+ "SIGCONT" +sigchld+ "SIGCHLD" +sigttin+ "SIGTTIN"
  +sigttou+ "SIGTTOU" +sigio+ "SIGIO" +sigxcpu+ "SIGXCPU" +sigxfsz+ "SIGXFSZ"
  +sigvtalrm+ "SIGVTALRM" +sigprof+ "SIGPROF" +sigwinch+ "SIGWINCH"
  +siginfo+ "SIGINFO" +sigusr1+ "SIGUSR1" +sigusr2+ "SIGUSR2")

(defparameter *signal-names*
  (list (cons +sighup+ "SIGHUP") (cons +sigint+ "SIGINT")
        (cons +sigquit+ "SIGQUIT") (cons +sigill+ "SIGILL")
        (cons +sigtrap+ "SIGTRAP") (cons +sigabrt+ "SIGABRT")
        (cons +sigemt+ "SIGEMT") (cons +sigfpe+ "SIGFPE")
        (cons +sigkill+ "SIGKILL") (cons +sigbus+ "SIGBUS")
        (cons +sigsegv+ "SIGSEGV") (cons +sigsys+ "SIGSYS")
        (cons +sigpipe+ "SIGPIPE") (cons +sigalrm+ "SIGALRM")
        (cons +sigterm+ "SIGTERM") (cons +sigurg+ "SIGURG")
        (cons +sigstop+ "SIGSTOP") (cons +sigtstp+ "SIGTSTP")
        (cons +sigcont+ "SIGCONT") (cons +sigchld+ "SIGCHLD")
        (cons +sigttin+ "SIGTTIN") (cons +sigttou+ "SIGTTOU")
        (cons +sigio+ "SIGIO") (cons +sigxcpu+ "SIGXCPU")
        (cons +sigxfsz+ "SIGXFSZ") (cons +sigvtalrm+ "SIGVTALRM")
        (cons +sigprof+ "SIGPROF") (cons +sigwinch+ "SIGWINCH")
        (cons +siginfo+ "SIGINFO") (cons +sigusr1+ "SIGUSR1")
        (cons +sigusr2+ "SIGUSR2"))
  "Signal number -> name, for messages.")

(defun signal-name (signo)
  "The name of signal SIGNO (\"SIGINT\"), or \"signal N\"."
  (or (cdr (assoc signo *signal-names*)) (format nil "signal ~a" signo)))

(defparameter *runtime-signals*
  (list (cons +sigsegv+ "memory faults and guard pages")
        (cons +sigbus+ "memory faults")
        (cons +sigill+ "its error traps")
        (cons +sigtrap+ "its error traps and breakpoints")
        (cons +sigfpe+ "arithmetic errors")
        (cons +sigusr2+ "stopping threads for garbage collection (a handler ~
                         would hang the next collection)")
        (cons +sigurg+ "INTERRUPT-THREAD, WITH-TIMEOUT and TERMINATE-THREAD"))
  "Signals SBCL's runtime handles for its own work on this platform; taking
them over would break the Lisp, so SIGNAL-HANDLER refuses them.")

;;;# Handlers

(defclass signal-watcher ()
  ((signo :initarg :signo :reader signal-watcher-signo)
   (c :accessor signal-watcher-c :initform nil
      :documentation "The C watcher, nil once closed.")
   (callback :initarg :callback :accessor signal-watcher-callback)
   (event-cb :initarg :event-cb :accessor signal-watcher-event-cb)
   (closed :accessor signal-watcher-closed :initform nil))
  (:documentation "The one C watcher of a signal in a loop, behind
SIGNAL-HANDLER."))

(defun signal-install-error (signo code why)
  (error 'event-error
         :code code
         :msg (format nil "signal-handler: cannot handle ~a (~a): ~?"
                      (signal-name signo) signo (car why) (cdr why))))

(defun check-signal-number (signo)
  "Signals a clear error unless SIGNO can get a handler."
  (unless (integerp signo)
    (error "signal-handler: SIGNO must be a signal number such as ~
            as:+sigint+ or as:+sigterm+, not ~s." signo))
  (let ((missing (rassoc signo *missing-signal-values*))
        (runtime (cdr (assoc signo *runtime-signals*))))
    (cond (missing
           (signal-install-error
            signo cl-async-ffi:+uv-einval+
            (list "this platform has no ~a (~d is a placeholder)"
                  (car missing) signo)))
          (runtime
           (signal-install-error
            signo cl-async-ffi:+uv-einval+
            (list "SBCL uses it for ~@?; pick another signal (SIGUSR1, ~
                   SIGHUP, SIGTERM, ...)" runtime))))))

(defun signal-watchers ()
  (loop-signal-watchers *event-base*))

(defun signal-handler (signo signal-cb &key event-cb)
  "Runs SIGNAL-CB each time the process receives signal SIGNO, until
FREE-SIGNAL-HANDLER (or CLEAR-SIGNAL-HANDLERS) or the end of the loop.
Needs a running loop; the handler keeps it alive.

  SIGNO      a signal number: +SIGINT+, +SIGTERM+, +SIGHUP+, +SIGUSR1+...
             (this platform's numbers).
  SIGNAL-CB  (lambda (signo)), run on the loop thread as an ordinary
             callback (any cl-async function may be called; EXIT-EVENT-LOOP
             ends the loop cleanly).  Deliveries that arrive together may
             be reported once.
  :event-cb  (lambda (condition)): errors raised in SIGNAL-CB when the loop
             catches app errors (there are no signal events).

A loop has at most one handler per signal: calling SIGNAL-HANDLER again
for SIGNO replaces its callbacks.  While a handler exists the signal no
longer reaches the Lisp (for SIGINT: no SB-SYS:INTERACTIVE-INTERRUPT);
freeing it puts the previous disposition back.  A signal that cannot be
handled (SIGKILL, SIGSTOP, a number that is no signal, the signals SBCL
itself needs: SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGUSR2, SIGURG)
signals an EVENT-ERROR, whether or not :event-cb is given.  Returns nil."
  (check-event-loop-running)
  (check-signal-number signo)
  (let ((watcher (gethash signo (signal-watchers))))
    (if watcher
        (setf (signal-watcher-callback watcher) signal-cb
              (signal-watcher-event-cb watcher) event-cb)
        (let* ((watcher (make-instance 'signal-watcher
                                       :signo signo :callback signal-cb
                                       :event-cb event-cb))
               (id (register-object watcher)))
          (multiple-value-bind (ptr code)
              (cl-async-ffi:signal-new (loop-pointer) id signo)
            (unless ptr
              (unregister-object id)
              (signal-install-error
               signo code
               (list "~a (SIGKILL and SIGSTOP cannot be caught; signals ~
                      are numbered from 1)" (cl-async-ffi:strerror code))))
            (setf (signal-watcher-c watcher) ptr
                  (gethash signo (signal-watchers)) watcher)
            (push signo (event-base-signal-handlers *event-base*))
            (add-event-loop-exit-callback
             (lambda () (close-signal-watcher watcher))))))
    nil))

(defun close-signal-watcher (watcher)
  "Closes WATCHER's C watcher (the signal's disposition is back at once)
and forgets it.  Closing twice does nothing."
  (unless (signal-watcher-closed watcher)
    (setf (signal-watcher-closed watcher) t)
    (let ((signo (signal-watcher-signo watcher))
          (base *event-base*))
      (when (eq watcher (gethash signo (loop-signal-watchers base)))
        (remhash signo (loop-signal-watchers base))
        (setf (event-base-signal-handlers base)
              (remove signo (event-base-signal-handlers base)))))
    (let ((ptr (signal-watcher-c watcher)))
      (setf (signal-watcher-c watcher) nil)
      (when ptr (cl-async-ffi:signal-close ptr)))))

(defun free-signal-handler (signo)
  "Removes this loop's handler for signal SIGNO, if it has one, and puts
back what handled the signal before (for SIGINT, SBCL's ^C handling).
Returns nil."
  (check-event-loop-running)
  (let ((watcher (gethash signo (signal-watchers))))
    (when watcher
      (close-signal-watcher watcher)))
  nil)

(defun clear-signal-handlers ()
  "Removes every signal handler of this loop (see FREE-SIGNAL-HANDLER).
Returns nil."
  (check-event-loop-running)
  (dolist (signo (copy-list (event-base-signal-handlers *event-base*)))
    (free-signal-handler signo))
  (setf (event-base-signal-handlers *event-base*) nil))

(defmethod object-signal ((watcher signal-watcher) signum)
  (unless (signal-watcher-closed watcher)
    (let ((callback (signal-watcher-callback watcher)))
      (catch-app-errors (signal-watcher-event-cb watcher)
        (when callback (funcall callback signum))))))

(defmethod object-event-cb ((watcher signal-watcher))
  (signal-watcher-event-cb watcher))

(defmethod object-closed ((watcher signal-watcher))
  (setf (signal-watcher-closed watcher) t
        (signal-watcher-c watcher) nil))

(defmethod object-loop-closed ((watcher signal-watcher))
  (object-closed watcher))
