;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; fsevent.lisp --- filesystem events: watching a file or a directory.

(in-package #:cl-async)

(defclass fs-monitor ()
  ((c :accessor fs-monitor-c :initform nil
      :documentation "The C watcher (a foreign pointer), nil once closed.")
   (path :initarg :path :reader fs-monitor-path
         :documentation "The watched path, as given to the system.")
   (callback :initarg :callback :accessor fs-monitor-callback)
   (event-cb :initarg :event-cb :accessor fs-monitor-event-cb)
   (watching :accessor fs-monitor-watching :initform t
             :documentation "True until FS-UNWATCH or FS-MONITOR-CLOSE."))
  (:documentation "Watches a file or a directory for changes; made by
FS-WATCH."))

(defmethod print-object ((m fs-monitor) s)
  (print-unreadable-object (m s :type t :identity t)
    (format s "~s~:[ closed~;~]" (fs-monitor-path m) (fs-monitor-c m))))

(defun fs-watch (path callback &key (event-cb #'error))
  "Watches PATH, a file or a directory (its direct entries; inotify does
not recurse on Linux), and runs CALLBACK when something changes there,
until FS-UNWATCH or FS-MONITOR-CLOSE.  Needs a running loop; an active
monitor keeps it alive.  Which events arrive, and how many per change,
depends on the platform.

  PATH       a pathname designator (a string is used as it is, a pathname
             as the system names it).
  CALLBACK   (lambda (fs-monitor path rename-p change-p)): the monitor
             FS-WATCH returned; PATH the changed entry's name relative to
             a watched directory (the file's own name when a file is
             watched), or nil; RENAME-P true when an entry appeared,
             disappeared or was renamed; CHANGE-P true when contents or
             attributes changed.
  :event-cb  (lambda (condition)), default #'ERROR: an error while
             watching (a FILESYSTEM-ERROR or EVENT-ERROR) and, when the
             loop catches app errors, errors raised in CALLBACK.

A path that cannot be watched signals at once, whatever :event-cb is:
FILESYSTEM-ENOENT when it does not exist, FILESYSTEM-EACCES when it may
not be read.  Returns the FS-MONITOR."
  (check-event-loop-running)
  (let* ((name (native-path-string path "fs-watch's path"))
         (monitor (make-instance 'fs-monitor :path name :callback callback
                                             :event-cb event-cb))
         (id (register-object monitor)))
    (multiple-value-bind (ptr code)
        (cl-async-ffi:fs-event-new (loop-pointer) id name)
      (unless ptr
        (unregister-object id)
        (error (filesystem-condition
                code name (format nil "fs-watch cannot watch ~a" name)
                'event-error)))
      (setf (fs-monitor-c monitor) ptr)
      monitor)))

(defun fs-unwatch (fs-monitor)
  "Stops FS-MONITOR's events: CALLBACK never runs again and the monitor no
longer keeps the loop alive.  It stays open until FS-MONITOR-CLOSE or the
loop's exit.  Does nothing on a monitor already stopped or closed.
Returns nil."
  (let ((ptr (fs-monitor-c fs-monitor)))
    (when (and ptr (fs-monitor-watching fs-monitor))
      (setf (fs-monitor-watching fs-monitor) nil)
      (cl-async-ffi:fs-event-stop ptr)))
  nil)

(defun fs-monitor-close (fs-monitor)
  "Closes FS-MONITOR (no need to unwatch first): no more callbacks.
Closing twice does nothing; safe from exit callbacks.  Returns nil."
  (let ((ptr (fs-monitor-c fs-monitor)))
    (setf (fs-monitor-watching fs-monitor) nil
          (fs-monitor-c fs-monitor) nil)
    (when ptr (cl-async-ffi:fs-event-close ptr)))
  nil)

(defmethod object-fs-event ((monitor fs-monitor) status name events)
  (when (fs-monitor-watching monitor)
    (let ((event-cb (fs-monitor-event-cb monitor)))
      (catch-app-errors event-cb
        (if (zerop status)
            (funcall (fs-monitor-callback monitor) monitor name
                     (logtest events cl-async-ffi:+fs-rename+)
                     (logtest events cl-async-ffi:+fs-change+))
            (when event-cb
              (run-event-cb event-cb
                            (filesystem-condition
                             status (fs-monitor-path monitor)
                             (format nil "fs-watch: watching ~a failed"
                                     (fs-monitor-path monitor))
                             'event-error))))))))

(defmethod object-event-cb ((monitor fs-monitor))
  (fs-monitor-event-cb monitor))

(defmethod object-closed ((monitor fs-monitor))
  (setf (fs-monitor-watching monitor) nil
        (fs-monitor-c monitor) nil))

(defmethod object-loop-closed ((monitor fs-monitor))
  (object-closed monitor))
