;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; misc.lisp --- small helpers of the cl-async API.

(in-package #:cl-async)

(defun mkdtemp (template cb &key event-cb)
  "Creates a fresh directory from TEMPLATE (a path ending in \"XXXXXX\")
and calls CB with its name on the next pass of the loop.  A failure
reaches EVENT-CB as an EVENT-ERROR."
  (check-event-loop-running)
  (multiple-value-bind (path code)
      (cl-async-ffi:make-temp-directory (namestring template))
    (delay (lambda ()
             (if path
                 (funcall cb path)
                 (let ((c (make-condition
                           'filesystem-error :code code :path template
                           :msg (format nil "mkdtemp ~a failed: ~a" template
                                        (cl-async-ffi:strerror code)))))
                   (when event-cb (run-event-cb event-cb c)))))
           :event-cb event-cb)
    nil))

;;;# Idlers

(defclass idler ()
  ((cancel :initarg :cancel :reader idler-cancel)
   (freed :initform nil :accessor idler-freed :reader idler-freed-p))
  (:documentation "A callback run on every pass of the event loop, made by
IDLE.  While it exists the loop never sleeps."))

(defun idle (callback &key event-cb)
  "Runs CALLBACK (no arguments) on every pass of the event loop until
FREE-IDLER.  Errors in it go to EVENT-CB as for DELAY."
  (make-instance 'idler :cancel (interval callback :event-cb event-cb)))

(defun free-idler (idler)
  "Stops IDLER.  Freeing twice does nothing."
  (unless (idler-freed idler)
    (setf (idler-freed idler) t)
    (funcall (idler-cancel idler)))
  nil)

;;;# Signal numbers (Linux)

(macrolet ((signals (&rest pairs)
             `(progn
                ,@(loop :for (name value) :on pairs :by #'cddr
                        :collect `(defconstant ,name ,value
                                    ,(format nil "Signal number ~a." value))))))
  (signals +sighup+ 1 +sigint+ 2 +sigquit+ 3 +sigill+ 4 +sigtrap+ 5
           +sigabrt+ 6 +sigbus+ 7 +sigfpe+ 8 +sigkill+ 9 +sigusr1+ 10
           +sigsegv+ 11 +sigusr2+ 12 +sigpipe+ 13 +sigalrm+ 14 +sigterm+ 15
           +sigchld+ 17 +sigcont+ 18 +sigstop+ 19 +sigtstp+ 20 +sigttin+ 21
           +sigttou+ 22 +sigurg+ 23 +sigxcpu+ 24 +sigxfsz+ 25 +sigvtalrm+ 26
           +sigprof+ 27 +sigwinch+ 28 +sigio+ 29 +sigsys+ 31
           ;; not on Linux: upstream's values for BSD, kept for reading
           +sigemt+ 7 +siginfo+ 29))

;;;# Conditions of the parts of cl-async outside the TCP subset

(define-condition filesystem-error (event-error)
  ((path :initarg :path :initform nil :reader filesystem-path))
  (:documentation "A filesystem operation failed."))

(define-condition filesystem-enoent (filesystem-error) ()
  (:documentation "No such file or directory."))

(define-condition filesystem-eacces (filesystem-error) ()
  (:documentation "Permission denied."))

(define-condition filesystem-eperm (filesystem-error) ()
  (:documentation "Operation not permitted."))

(setf (documentation 'idler-freed-p 'function) "True once IDLER was freed.")
