;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; filesystem.lisp --- the filesystem conditions, path arguments, and
;;;; MKDTEMP (upstream's only filesystem operation), run on libuv's thread
;;;; pool by the C library.

(in-package #:cl-async)

;;;# Conditions

(define-condition filesystem-error (event-error)
  ((path :initarg :path :initform nil :reader filesystem-path
         :documentation "The path the operation was given, or nil."))
  (:documentation "A filesystem operation failed.  EVENT-ERRCODE is the
negative errno, EVENT-ERRMSG says what failed and why, FILESYSTEM-PATH
names the path."))

(define-condition filesystem-enoent (filesystem-error) ()
  (:documentation "No such file or directory (ENOENT): create the missing
file or directory first, or correct the path."))

(define-condition filesystem-eacces (filesystem-error) ()
  (:documentation "Permission denied (EACCES): the process may not search
or write the directory, or read the file."))

(define-condition filesystem-eperm (filesystem-error) ()
  (:documentation "Operation not permitted (EPERM)."))

(setf (documentation 'filesystem-path 'function)
      "The path of a FILESYSTEM-ERROR (as the operation was given it), or nil.")

(defun filesystem-condition (code path message &optional (otherwise
                                                            'filesystem-error))
  "The condition for a filesystem error CODE (a negative errno) on PATH:
FILESYSTEM-ENOENT, -EACCES or -EPERM (the class named after the errno, as
upstream maps them), else one of class OTHERWISE (a FILESYSTEM-ERROR or an
EVENT-ERROR).  MESSAGE describes what failed; the error text is added."
  (let* ((name (cl-async-ffi:err-name code))
         (type (cond ((string= name "ENOENT") 'filesystem-enoent)
                     ((string= name "EACCES") 'filesystem-eacces)
                     ((string= name "EPERM") 'filesystem-eperm)
                     (t otherwise))))
    (apply #'make-condition type
           :code code
           :msg (format nil "~a: ~a" message (cl-async-ffi:strerror code))
           (and (subtypep type 'filesystem-error) (list :path path)))))

;;;# Path arguments

(defun native-path-string (path argument)
  "PATH (a string, taken as it is, or a pathname, as the operating system
names it) as a string; signals an error naming ARGUMENT otherwise."
  (typecase path
    (string path)
    (pathname (uiop:native-namestring path))
    (t (error "cl-async: ~a must be a pathname designator (a string or a ~
               pathname), not ~s." argument path))))

;;;# mkdtemp

(defclass fs-request ()
  ((template :initarg :template :reader fs-request-template)
   (cb :initarg :cb :reader fs-request-cb)
   (event-cb :initarg :event-cb :reader fs-request-event-cb))
  (:documentation "A MKDTEMP request in flight."))

(defun mkdtemp (template cb &key (event-cb #'error))
  "Creates a fresh directory, readable and writable by this user only (mode
0700), named after TEMPLATE, asynchronously (on libuv's thread pool); the
request keeps the loop alive.  The directory is never removed by cl-async.

  TEMPLATE  a pathname designator whose last six characters are
            \"XXXXXX\" (they are replaced), e.g.
            (merge-pathnames \"myappXXXXXX\" (uiop:temporary-directory)).
            A string is used as it is, a pathname as the system names it.
  CB        (lambda (directory)), run once on the loop thread with the new
            directory as a directory pathname (its name ends in \"/\").
  :event-cb (lambda (condition)), default #'ERROR: gets a failure
            (FILESYSTEM-ENOENT for a missing parent directory,
            FILESYSTEM-EACCES, FILESYSTEM-EPERM, or an EVENT-ERROR), and,
            when the loop catches app errors, errors raised in CB.  With
            #'ERROR the condition is signalled and leaves WITH-EVENT-LOOP.

A template that does not end in \"XXXXXX\" signals an EVENT-ERROR at once,
as does a request that cannot start.  Returns nil."
  (check-event-loop-running)
  (let ((path (native-path-string template "mkdtemp's template")))
    (unless (and (>= (length path) 6)
                 (string= "XXXXXX" path :start2 (- (length path) 6)))
      (error 'event-error
             :code cl-async-ffi:+uv-einval+
             :msg (format nil "mkdtemp: the template ~s must end in ~
                               \"XXXXXX\" (a file name, not a directory: ~
                               e.g. \"/tmp/myappXXXXXX\")" path)))
    (let* ((request (make-instance 'fs-request :template path :cb cb
                                               :event-cb event-cb))
           (id (register-object request))
           (rc (cl-async-ffi:fs-mkdtemp (loop-pointer) id path)))
      (unless (zerop rc)
        (unregister-object id)
        (error (filesystem-condition
                rc path (format nil "mkdtemp ~a cannot start" path)
                'event-error)))
      nil)))

(defmethod object-fs ((request fs-request) status path)
  (let ((event-cb (fs-request-event-cb request)))
    (catch-app-errors event-cb
      (if (zerop status)
          (funcall (fs-request-cb request)
                   (uiop:parse-native-namestring path :ensure-directory t))
          (when event-cb
            (run-event-cb event-cb
                          (filesystem-condition
                           status (fs-request-template request)
                           (format nil "mkdtemp ~a failed"
                                   (fs-request-template request))
                           'event-error)))))))
