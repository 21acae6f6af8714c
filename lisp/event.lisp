;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; event.lisp --- timers: delay, interval, and upstream's events.

(in-package #:cl-async)

(defclass event ()
  ((c :accessor event-c :initarg :c :initform nil
      :documentation "The C timer (a foreign pointer), nil once freed.")
   (freed :accessor event-freed :reader event-freed-p :initform nil
          :documentation "True once the event is freed.")
   (id :accessor event-id :initform nil)
   (callback :accessor event-callback :initarg :callback :initform nil)
   (event-cb :accessor event-event-cb :initarg :event-cb :initform nil)
   (kind :accessor event-kind :initarg :kind :initform :delay
         :documentation ":delay (freed after it fires), :event (made by
MAKE-EVENT, also freed after it fires) or :interval.")
   (period :accessor event-period :initarg :period :initform 0
           :documentation "Interval period in milliseconds."))
  (:documentation "A timer.  DELAY and MAKE-EVENT return one; it is freed
automatically after its callback runs."))

(defmethod print-object ((e event) s)
  (print-unreadable-object (e s :type t :identity t)
    (format s "~(~a~)~:[~; freed~]" (event-kind e) (event-freed e))))

(defun seconds->ms (seconds)
  "Milliseconds for SECONDS (a non-negative real, or nil meaning 0)."
  (cond ((null seconds) 0)
        ((and (realp seconds) (not (minusp seconds)))
         (round (* seconds 1000)))
        (t (error "cl-async: a time in seconds must be a non-negative ~
                   number or nil, not ~s." seconds))))

(defun make-timer (callback event-cb kind &optional (period 0))
  (check-event-loop-running)
  (let* ((event (make-instance 'event :callback callback :event-cb event-cb
                                      :kind kind :period period))
         (id (register-object event)))
    (multiple-value-bind (ptr code) (cl-async-ffi:timer-new (loop-pointer) id)
      (unless ptr
        (unregister-object id)
        (error 'event-error :code code
                            :msg (format nil "cannot create a timer: ~a"
                                         (cl-async-ffi:strerror code))))
      (setf (event-id event) id
            (event-c event) ptr)
      event)))

(defun start-timer (event ms)
  (let ((rc (cl-async-ffi:timer-start (event-c event) ms 0)))
    (unless (zerop rc)
      (error 'event-error :code rc
                          :msg (format nil "cannot start a timer: ~a"
                                       (cl-async-ffi:strerror rc))))))

(defun check-event-unfreed (event)
  (when (event-freed event)
    (error 'event-freed :event event)))

(defun delay (callback &key time event-cb)
  "Runs CALLBACK (no arguments) after TIME seconds (a real; nil or 0: on
the next pass of the loop, never synchronously).  Delays with equal times
run in the order they were made.  An error in CALLBACK goes to EVENT-CB
when the loop catches app errors.  Returns the EVENT, freed once it ran."
  (let ((event (make-timer callback event-cb :delay)))
    (start-timer event (seconds->ms time))
    event))

(defmacro with-delay ((&optional (seconds 0)) &body body)
  "Runs BODY after SECONDS (see DELAY)."
  `(delay (lambda () ,@body) :time ,seconds))

(defun interval (callback &key time event-cb)
  "Runs CALLBACK every TIME seconds (first after TIME; nil: every pass of
the loop), until cancelled.  Each run is timed from the end of the previous
one.  Returns a function of no arguments that cancels it (also from inside
CALLBACK); see REMOVE-INTERVAL."
  (let* ((ms (seconds->ms time))
         (event (make-timer callback event-cb :interval ms)))
    (start-timer event ms)
    (lambda ()
      (unless (event-freed event)
        (free-event event)))))

(defmacro with-interval ((seconds) &body body)
  "Runs BODY every SECONDS (see INTERVAL); returns the cancel function."
  `(interval (lambda () ,@body) :time ,seconds))

(defun remove-interval (interval-fn)
  "Cancels an interval: INTERVAL-FN is what INTERVAL returned."
  (funcall interval-fn)
  nil)

(defun make-event (callback &key event-cb)
  "An event that runs CALLBACK when ADD-EVENT fires it.  It is active (it
keeps the loop alive) until it fires, or is removed or freed.  Use
notifiers to wake the loop from another thread."
  (let ((event (make-timer callback event-cb :event)))
    (start-timer event (* 1000 60 60 24 365 100))
    event))

(defun add-event (event &key timeout activate)
  "Fires EVENT after TIMEOUT seconds, or on the next pass without one.
ACTIVATE is accepted for compatibility and has no effect.  Returns 0."
  (declare (ignore activate))
  (check-event-unfreed event)
  (start-timer event (seconds->ms timeout))
  0)

(defun remove-event (event)
  "Stops EVENT without freeing it (ADD-EVENT can fire it later).  Returns t."
  (check-event-unfreed event)
  (cl-async-ffi:timer-stop (event-c event))
  t)

(defun free-event (event)
  "Frees EVENT: it never fires.  Signals EVENT-FREED if already freed."
  (check-event-unfreed event)
  (setf (event-freed event) t)
  (let ((ptr (event-c event)))
    (when ptr
      (cl-async-ffi:timer-close ptr)))
  nil)

(defmethod ref ((event event))
  (check-event-unfreed event)
  (cl-async-ffi:handle-ref (event-c event) t))

(defmethod unref ((event event))
  (check-event-unfreed event)
  (cl-async-ffi:handle-ref (event-c event) nil))

(defmethod object-timer-fired ((event event))
  (if (eq (event-kind event) :interval)
      (let ((callback (event-callback event)))
        (catch-app-errors (event-event-cb event)
          (when callback (funcall callback)))
        (unless (event-freed event)
          (start-timer event (event-period event))))
      (unwind-protect
           (let ((callback (event-callback event)))
             (catch-app-errors (event-event-cb event)
               (when callback (funcall callback))))
        (unless (event-freed event)
          (free-event event)))))

(defmethod object-event-cb ((event event)) (event-event-cb event))

(defmethod object-closed ((event event))
  (setf (event-freed event) t
        (event-c event) nil))

(defmethod object-loop-closed ((event event))
  (setf (event-freed event) t
        (event-c event) nil))

(setf (documentation 'event-c 'function)
      "The C timer of an EVENT (a foreign pointer), nil once freed."
      (documentation 'event-freed-p 'function)
      "True once EVENT was freed (by FREE-EVENT, after it fired, or at loop exit).")
