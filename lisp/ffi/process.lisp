;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; process.lisp --- signal watchers and child processes.

(in-package #:cl-async-ffi)

;;;# Signals

(defc %signal-new "casl_signal_new" :int
  (loop :pointer) (id :int64) (signum :int) (out :pointer))
(defc signal-close "casl_signal_close" :void (signal :pointer))

(defun signal-new (loop id signum)
  "Watches SIGNUM: (values watcher-pointer code)."
  (with-out-pointer (out) (%signal-new loop id signum out)))

(defc %signal-number "casl_signal_number" :int (name nullable-string))

(defun signal-number (name)
  "The number of the signal NAME (\"SIGINT\", ...) on this platform, or nil
if the platform has no such signal."
  (let ((n (%signal-number name)))
    (and (plusp n) n)))

;;;# Child processes

(defconstant +stdio-ignore+ 0 "CASL_STDIO_IGNORE.")
(defconstant +stdio-inherit+ 1 "CASL_STDIO_INHERIT.")
(defconstant +stdio-pipe+ 2 "CASL_STDIO_PIPE.")
(defconstant +stdio-file+ 3 "CASL_STDIO_FILE.")

(cffi:defcstruct casl-stdio
  (kind :int) (fd :int) (path :pointer) (id :int64) (pipe :pointer))

(cffi:defcstruct casl-spawn-options
  (file :pointer) (args :pointer) (env :pointer) (cwd :pointer)
  (stdio-count :int) (stdio :pointer))

(defc %process-spawn "casl_process_spawn" :int
  (loop :pointer) (id :int64) (options :pointer) (out :pointer))
(defc process-kill "casl_process_kill" :int (process :pointer) (signum :int))
(defc process-pid "casl_process_pid" :int (process :pointer))

(defun foreign-string-array (strings)
  "A NULL-terminated foreign array of foreign copies of STRINGS (UTF-8);
free it with FREE-STRING-ARRAY."
  (let ((array (cffi:foreign-alloc :pointer :count (1+ (length strings)))))
    (loop :for i :from 0
          :for s :in strings
          :do (setf (cffi:mem-aref array :pointer i)
                    (cffi:foreign-string-alloc s :encoding :utf-8))
          :finally (setf (cffi:mem-aref array :pointer i) (cffi:null-pointer)))
    array))

(defun free-string-array (array)
  (unless (cffi:null-pointer-p array)
    (loop :for i :from 0
          :for p := (cffi:mem-aref array :pointer i)
          :until (cffi:null-pointer-p p)
          :do (cffi:foreign-string-free p))
    (cffi:foreign-free array)))

(defun process-spawn (loop id file args env cwd stdio)
  "Starts FILE with ARGS (argv, ARGS[0] the name) and ENV (a list of
\"NAME=value\" strings, or nil to inherit) in CWD (or nil).  STDIO is a list
of (kind fd path id), one per child descriptor from 0, KIND one of the
+stdio-...+ constants.  Returns (values process-pointer code pipes), PIPES
the connection pointer of each descriptor (nil where KIND is not
+stdio-pipe+)."
  (let ((n (length stdio))
        (c-args (foreign-string-array args))
        (c-env (if env (foreign-string-array env) (cffi:null-pointer)))
        (paths '()))
    (unwind-protect
         (cffi:with-foreign-objects ((opts '(:struct casl-spawn-options))
                                     (sv '(:struct casl-stdio) (max n 1))
                                     (out :pointer))
           (cffi:with-foreign-strings ((c-file file :encoding :utf-8))
             ;; The slot names are bound as symbol macros below, so the
             ;; spec's fields get names of their own.
             (loop :for (s-kind s-fd s-path s-id) :in stdio
                   :for i :from 0
                   :for e := (cffi:mem-aptr sv '(:struct casl-stdio) i)
                   :do (cffi:with-foreign-slots ((kind fd path id pipe) e
                                                 (:struct casl-stdio))
                         (setf kind s-kind fd (or s-fd -1) id (or s-id 0)
                               pipe (cffi:null-pointer)
                               path (if s-path
                                        (car (push (cffi:foreign-string-alloc
                                                    s-path :encoding :utf-8)
                                                   paths))
                                        (cffi:null-pointer)))))
             (let ((c-cwd (if cwd
                              (car (push (cffi:foreign-string-alloc
                                          cwd :encoding :utf-8)
                                         paths))
                              (cffi:null-pointer))))
               (cffi:with-foreign-slots ((file args env cwd stdio-count stdio)
                                         opts (:struct casl-spawn-options))
                 (setf file c-file args c-args env c-env cwd c-cwd
                       stdio-count n stdio sv)))
             (let ((rc (%process-spawn loop id opts out)))
               (if (zerop rc)
                   (values (cffi:mem-ref out :pointer) 0
                           (loop :for i :below n
                                 :for p := (cffi:foreign-slot-value
                                            (cffi:mem-aptr sv '(:struct casl-stdio) i)
                                            '(:struct casl-stdio) 'pipe)
                                 :collect (if (cffi:null-pointer-p p) nil p)))
                   (values nil rc nil)))))
      (free-string-array c-args)
      (unless (cffi:null-pointer-p c-env) (free-string-array c-env))
      (mapc #'cffi:foreign-string-free paths))))
