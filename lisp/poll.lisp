;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; poll.lisp --- pollers: readiness of the application's own descriptors.

(in-package #:cl-async)

(defclass poller ()
  ((c :accessor poller-c :initform nil
      :documentation "The C poller (a foreign pointer), nil once freed.")
   (freed :accessor poller-freed :reader poller-freed-p :initform nil
          :documentation "True once freed.")
   (fd :initarg :fd :reader poller-fd :documentation "The descriptor.")
   (callback :initarg :callback :accessor poller-callback)
   (event-cb :initarg :event-cb :accessor poller-event-cb))
  (:documentation "Watches an operating system descriptor for readiness;
made by POLL."))

(defmethod print-object ((p poller) s)
  (print-unreadable-object (p s :type t :identity t)
    (format s "fd ~a~:[~; freed~]" (poller-fd p) (poller-freed p))))

(defun poll-events (poll-for)
  "The C event bits for POLL-FOR, a list of :readable and :writable;
signals an error for anything else."
  (unless (and (listp poll-for) poll-for)
    (error "poll: :poll-for must be a non-empty list of :readable and ~
            :writable, not ~s." poll-for))
  (let ((bits 0))
    (dolist (event poll-for bits)
      (setf bits
            (logior bits
                    (case event
                      (:readable cl-async-ffi:+poll-readable+)
                      (:writable cl-async-ffi:+poll-writable+)
                      (t (error "poll: unknown event ~s in :poll-for ~s: ~
                                 use :readable and/or :writable."
                                event poll-for))))))))

(defun poll-error (fd code)
  "The condition for a poller of FD refused with CODE."
  (let ((name (cl-async-ffi:err-name code)))
    (cond ((string= name "EPERM")
           (make-condition
            'filesystem-eperm
            :code code
            :msg (format nil "poll: descriptor ~a cannot be polled (a ~
                              regular file or a directory is always ready: ~
                              read or write it directly)" fd)))
          ((string= name "EBADF")
           (make-condition
            'event-error
            :code code
            :msg (format nil "poll: ~a is not an open file descriptor" fd)))
          ((string= name "EEXIST")
           (make-condition
            'event-error
            :code code
            :msg (format nil "poll: descriptor ~a is already watched by ~
                              this loop (by another poller or a socket): ~
                              free that poller first" fd)))
          (t
           (make-condition
            'event-error
            :code code
            :msg (format nil "poll: cannot poll descriptor ~a: ~a" fd
                         (cl-async-ffi:strerror code)))))))

(defun poll (fd poll-cb &key event-cb (poll-for '(:readable :writable)) socket)
  "Watches the operating system descriptor FD (an integer: a socket, pipe,
terminal...) and runs POLL-CB while it is ready, level-triggered: on every
pass of the loop while the condition holds, until FREE-POLLER.  Needs a
running loop; an active poller keeps it alive.  The descriptor is made
non-blocking and stays the caller's (freeing the poller does not close it).

  POLL-CB    (lambda (events)), EVENTS a list of the ready ones among
             :readable and :writable (both: (:writable :readable)).
  :poll-for  the events to watch: a list of :readable and/or :writable
             (default both).  Anything else signals an error.
  :event-cb  (lambda (condition)): an error on the descriptor (an
             EVENT-ERROR, e.g. EBADF for POLLERR; the poller stops) and,
             when the loop catches app errors, errors raised in POLL-CB.
  :socket    accepted for compatibility (Unix polls sockets like any
             descriptor).

A descriptor that cannot be polled signals at once: FILESYSTEM-EPERM for a
regular file or directory, an EVENT-ERROR for a closed descriptor (EBADF)
or one this loop already watches (EEXIST).  Returns the POLLER."
  (declare (ignore socket))
  (check-event-loop-running)
  (unless (typep fd '(integer 0 #.most-positive-fixnum))
    (error "poll: FD must be a file descriptor (a non-negative integer), ~
            not ~s." fd))
  (let* ((events (poll-events poll-for))
         (poller (make-instance 'poller :fd fd :callback poll-cb
                                        :event-cb event-cb))
         (id (register-object poller)))
    (multiple-value-bind (ptr code)
        (cl-async-ffi:poll-new (loop-pointer) id fd events)
      (unless ptr
        (unregister-object id)
        (error (poll-error fd code)))
      (setf (poller-c poller) ptr)
      poller)))

(defun free-poller (poller)
  "Stops POLLER and releases it: POLL-CB never runs again (also when called
from it).  Freeing twice does nothing.  Returns nil."
  (unless (poller-freed poller)
    (setf (poller-freed poller) t)
    (let ((ptr (poller-c poller)))
      (setf (poller-c poller) nil)
      (when ptr (cl-async-ffi:poll-close ptr))))
  nil)

(defun poll-event-names (bits)
  (let ((names '()))
    (when (logtest bits cl-async-ffi:+poll-readable+) (push :readable names))
    (when (logtest bits cl-async-ffi:+poll-writable+) (push :writable names))
    names))

(defmethod object-poll ((poller poller) status events)
  (unless (poller-freed poller)
    (let ((event-cb (poller-event-cb poller)))
      (catch-app-errors event-cb
        (if (zerop status)
            (let ((callback (poller-callback poller)))
              (when callback (funcall callback (poll-event-names events))))
            (when event-cb
              (run-event-cb event-cb
                            (make-condition
                             'event-error
                             :code status
                             :msg (format nil "poll: error on descriptor ~a: ~
                                               ~a (the poller is stopped; ~
                                               free it)"
                                          (poller-fd poller)
                                          (cl-async-ffi:strerror status))))))))))

(defmethod object-event-cb ((poller poller)) (poller-event-cb poller))

(defmethod object-closed ((poller poller))
  (setf (poller-freed poller) t
        (poller-c poller) nil))

(defmethod object-loop-closed ((poller poller))
  (object-closed poller))

(setf (documentation 'poller-freed-p 'function)
      "True once POLLER was freed (by FREE-POLLER or at the loop's exit).")
