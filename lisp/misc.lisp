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
                           'event-error :code code
                           :msg (format nil "mkdtemp ~a failed: ~a" template
                                        (cl-async-ffi:strerror code)))))
                   (when event-cb (run-event-cb event-cb c)))))
           :event-cb event-cb)
    nil))
