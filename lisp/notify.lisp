;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; notify.lisp --- notifiers: wake the loop from any thread.

(in-package #:cl-async)

(defclass notifier ()
  ((c :accessor notifier-c :initform nil
      :documentation "The C notifier (a foreign pointer), nil once freed.")
   (freed :accessor notifier-freed :reader notifier-freed-p :initform nil
          :documentation "True once freed.")
   (id :accessor notifier-id :initform nil)
   (callback :accessor notifier-callback :initarg :callback :initform nil)
   (event-cb :accessor notifier-event-cb :initarg :event-cb :initform nil)
   (single-shot :accessor notifier-single-shot :initarg :single-shot
                :initform t)
   (lock :reader notifier-lock :initform (bt:make-lock "notifier")
         :documentation "Held by TRIGGER-NOTIFIER (any thread) and by
whatever frees the notifier, so a trigger never races a free."))
  (:documentation "Runs a callback in the loop's thread when triggered from
any thread."))

(defun make-notifier (callback &key event-cb (single-shot t))
  "A notifier whose CALLBACK (no arguments) runs in this loop's thread each
time TRIGGER-NOTIFIER is called, from any thread (triggers made before the
loop wakes may merge into one run).  A SINGLE-SHOT notifier (the default)
is freed after its callback ran once.  It keeps the loop alive until freed
(or UNREF'd)."
  (check-event-loop-running)
  (let* ((n (make-instance 'notifier :callback callback :event-cb event-cb
                                     :single-shot single-shot))
         (id (register-object n)))
    (multiple-value-bind (ptr code) (cl-async-ffi:notifier-new (loop-pointer) id)
      (unless ptr
        (unregister-object id)
        (error 'event-error :code code
                            :msg (format nil "cannot create a notifier: ~a"
                                         (cl-async-ffi:strerror code))))
      (setf (notifier-id n) id
            (notifier-c n) ptr)
      n)))

(defun trigger-notifier (notifier)
  "Wakes NOTIFIER's loop to run its callback.  Safe from any thread.
Signals NOTIFIER-FREED if the notifier was freed.  Returns 0."
  (bt:with-lock-held ((notifier-lock notifier))
    (when (notifier-freed notifier)
      (error 'notifier-freed :notifier notifier))
    (let ((rc (cl-async-ffi:notifier-send (notifier-c notifier))))
      (unless (zerop rc)
        (error 'event-error :code rc :msg (cl-async-ffi:strerror rc)))))
  0)

(defun free-notifier (notifier)
  "Frees NOTIFIER (loop thread only).  Signals NOTIFIER-FREED if it was
already freed."
  (bt:with-lock-held ((notifier-lock notifier))
    (when (notifier-freed notifier)
      (error 'notifier-freed :notifier notifier))
    (setf (notifier-freed notifier) t)
    (let ((ptr (notifier-c notifier)))
      (setf (notifier-c notifier) nil)
      (when ptr (cl-async-ffi:notifier-close ptr))))
  nil)

(defmethod ref ((n notifier))
  (when (notifier-freed n) (error 'notifier-freed :notifier n))
  (cl-async-ffi:handle-ref (notifier-c n) t))

(defmethod unref ((n notifier))
  (when (notifier-freed n) (error 'notifier-freed :notifier n))
  (cl-async-ffi:handle-ref (notifier-c n) nil))

(defmethod object-notified ((n notifier))
  (unwind-protect
       (let ((callback (notifier-callback n)))
         (catch-app-errors (notifier-event-cb n)
           (when callback (funcall callback))))
    (when (and (notifier-single-shot n) (not (notifier-freed n)))
      (free-notifier n))))

(defmethod object-event-cb ((n notifier)) (notifier-event-cb n))

(defmethod object-closed ((n notifier))
  (bt:with-lock-held ((notifier-lock n))
    (setf (notifier-freed n) t
          (notifier-c n) nil)))

(defmethod object-loop-closed ((n notifier))
  (object-closed n))

(setf (documentation 'notifier-freed-p 'function)
      "True once NOTIFIER was freed (by FREE-NOTIFIER, after its single shot,
or at loop exit).")
