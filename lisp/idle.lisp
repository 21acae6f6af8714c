;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; idle.lisp --- idlers: a callback on every pass of the loop.

(in-package #:cl-async)

(defclass idler ()
  ((cancel :initarg :cancel :reader idler-cancel
           :documentation "Stops the timer behind the idler.")
   (freed :initform nil :accessor idler-freed :reader idler-freed-p
          :documentation "True once freed."))
  (:documentation "A callback run on every pass of the event loop, made by
IDLE.  While it exists the loop never sleeps (it polls without waiting)."))

(defun idle (callback &key event-cb)
  "Runs CALLBACK (no arguments) once on every pass of the event loop, also
while other events are pending, until FREE-IDLER; it keeps the loop alive
and busy (100% CPU) meanwhile.  Needs a running loop.

  :event-cb  (lambda (condition)): errors raised in CALLBACK when the loop
             catches app errors.

Returns the IDLER.  The loop's exit stops it (FREE-IDLER afterwards is
harmless)."
  (make-instance 'idler :cancel (interval callback :event-cb event-cb)))

(defun free-idler (idler)
  "Stops IDLER: its callback never runs again (also when called from that
callback).  Freeing twice does nothing.  Returns nil."
  (unless (idler-freed idler)
    (setf (idler-freed idler) t)
    (funcall (idler-cancel idler)))
  nil)

(setf (documentation 'idler-freed-p 'function)
      "True once IDLER was freed.")
