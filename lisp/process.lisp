;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; process.lisp --- child processes: spawning with stdio redirected to
;;;; pipes, streams, files or descriptors; exit; signals.
;;;;
;;;; A child's stdio pipes are PIPEs (pipe.lisp) made before the spawn and
;;;; given their C connection by it; everything that works on a pipe works
;;;; on them.  The C library reaps every child: libuv while the process
;;;; handle is open, a small thread once it is closed (the loop ended first).

(in-package #:cl-async)

;;;# The process object

(defclass process ()
  ((id :accessor process-id :initform nil
       :documentation "The id of the C process handle, while it is open.")
   (c :accessor process-c :initform nil
      :documentation "The C process handle, nil once the child has exited
(or the loop ended).")
   (pid :reader process-pid :initarg :pid :initform nil)
   (path :reader process-path :initarg :path :initform nil)
   (input :accessor process-input :initarg :input :initform nil)
   (output :accessor process-output :initarg :output :initform nil)
   (error-output :accessor process-error-output :initarg :error-output
                 :initform nil)
   (exit-cb :accessor process-exit-cb :initarg :exit-cb :initform nil)
   (event-cb :accessor process-event-cb :initarg :event-cb :initform nil)
   (exit-status :accessor process-exit-status :initform nil
                :documentation "The exit status once the child has exited.")
   (term-signal :accessor process-term-signal :initform nil
                :documentation "The signal that ended the child (0 if it
exited by itself), once it has exited."))
  (:documentation "A child process started by SPAWN.  PROCESS-INPUT,
PROCESS-OUTPUT and PROCESS-ERROR-OUTPUT are the pipes (or streams) of its
stdio, or nil; PROCESS-PID is its process id."))

(defmethod print-object ((p process) stream)
  (print-unreadable-object (p stream :type t :identity t)
    (format stream "~@[~a ~]pid ~a ~a" (process-path p) (process-pid p)
            (let ((signal (process-term-signal p)))
              (cond ((null (process-exit-status p)) "running")
                    ((and signal (plusp signal))
                     (format nil "killed by signal ~a" signal))
                    (t (format nil "exited ~a" (process-exit-status p))))))))

(setf (documentation 'process-pid 'function)
      "The process id of PROCESS's child (still readable after it exited)."
      (documentation 'process-input 'function)
      "The pipe (or async stream, for :stream) SPAWN made for the child's
standard input, or nil.  Closing it (CLOSE-SOCKET, or CLOSE on the
stream) is the end of file for the child.  Setf-able."
      (documentation 'process-output 'function)
      "The pipe (or async stream, for :stream) SPAWN made for the child's
standard output, or nil.  Setf-able."
      (documentation 'process-error-output 'function)
      "The pipe (or async stream, for :stream) SPAWN made for the child's
standard error, or nil.  Setf-able.")

;;;# Arguments

(defparameter *stdio-pipe-keys*
  '(:read-cb :event-cb :data :connect-cb :write-cb :read-timeout
    :write-timeout :dont-drain-read-buffer :read-buffer)
  "The keys of a (:pipe ...) or (:stream ...) stdio spec: PIPE-CONNECT's.")

(defparameter *stdio-names* '("stdin" "stdout" "stderr"))

(defun bad-stdio-spec (spec argument)
  (error "spawn: ~s is not a stdio spec for ~s: give :ignore, :inherit, ~
          :pipe, :stream, (:pipe key value ...), (:stream key value ...), a ~
          file name (a string or pathname) or a file descriptor of this ~
          process (an integer >= 0)." spec argument))

(defun check-stdio-plist (spec argument)
  (let ((plist (rest spec)))
    (unless (and (listp (cdr (last spec))) (evenp (length plist)))
      (error "spawn: the ~s spec ~s must be (~s key value ...), with a value ~
              for each key." argument spec (first spec)))
    (loop :for (key value) :on plist :by #'cddr
          :unless (member key *stdio-pipe-keys*)
            :do (error "spawn: unknown key ~s in the ~s spec ~s; the keys of ~
                        a ~s spec are ~{~s~^ ~}." key argument spec (first spec)
                        *stdio-pipe-keys*)
          :when (eq key :data)
            :do (unless (typep value '(or null string (simple-array octet (*))))
                  (error "spawn: :data in the ~s spec must be a string or a ~
                          simple octet vector, not ~s." argument value)))
    plist))

(defun parse-stdio (spec fd argument)
  "SPEC for the child's descriptor FD as (kind fd path pipe-args stream-p);
PIPE-ARGS is the plist of a pipe spec (T for :pipe alone)."
  (cond ((eq spec :ignore) (list cl-async-ffi:+stdio-ignore+ nil nil nil nil))
        ((eq spec :inherit) (list cl-async-ffi:+stdio-inherit+ fd nil nil nil))
        ((eq spec :pipe) (list cl-async-ffi:+stdio-pipe+ nil nil '() nil))
        ((eq spec :stream) (list cl-async-ffi:+stdio-pipe+ nil nil '() t))
        ((and (consp spec) (member (first spec) '(:pipe :stream)))
         (list cl-async-ffi:+stdio-pipe+ nil nil (check-stdio-plist spec argument)
               (eq (first spec) :stream)))
        ((or (stringp spec) (pathnamep spec))
         (let ((path (native-path-string spec argument)))
           (when (zerop (length path)) (bad-stdio-spec spec argument))
           (list cl-async-ffi:+stdio-file+ nil path nil nil)))
        ((and (integerp spec) (<= 0 spec most-positive-fixnum))
         (list cl-async-ffi:+stdio-inherit+ spec nil nil nil))
        (t (bad-stdio-spec spec argument))))

(defun check-stdio-file (path fd argument)
  "Signals a FILESYSTEM-ERROR now if the file of a stdio spec cannot be
there: the input file must exist, an output file's directory must."
  (let ((missing (if (zerop fd)
                     (and (not (probe-file path)) path)
                     (let ((dir (uiop:pathname-directory-pathname
                                 (uiop:parse-native-namestring path))))
                       (and (pathname-directory dir)
                            (not (uiop:directory-exists-p dir))
                            (uiop:native-namestring dir))))))
    (when missing
      (error 'filesystem-enoent
             :code (- sb-unix:enoent) :path missing
             :msg (format nil "spawn: ~s ~a: ~a does not exist" argument
                          (if (zerop fd) "reads a file that is missing"
                              "writes into a directory that is missing")
                          missing)))))

(defun check-environment (env)
  (unless (listp env)
    (error "spawn: :env must be an alist of (name . value) strings, not ~s."
           env))
  (loop :for entry :in env
        :unless (and (consp entry) (stringp (car entry)) (stringp (cdr entry))
                     (plusp (length (car entry)))
                     (not (find #\= (car entry))))
          :do (error "spawn: bad :env entry ~s: each entry must be (name . ~
                      value), two strings, the name non-empty and without ~
                      #\\=." entry)
        :collect (concatenate 'string (car entry) "=" (cdr entry))))

(defun check-working-directory (dir)
  (let ((name (native-path-string dir ":working-directory")))
    (unless (uiop:directory-exists-p (uiop:ensure-directory-pathname
                                      (uiop:parse-native-namestring name)))
      (error 'filesystem-enoent
             :code (- sb-unix:enoent) :path name
             :msg (format nil "spawn: the :working-directory ~a does not ~
                               exist (or is not a directory): create it, or ~
                               pass an existing one" name)))
    (uiop:native-namestring (truename (uiop:ensure-directory-pathname
                                       (uiop:parse-native-namestring name))))))

(defun spawn-error (code path)
  (filesystem-condition
   code path
   (if (string= (cl-async-ffi:err-name code) "ENOENT")
       (format nil "spawn: cannot run ~s (no such program, or its ~
                    interpreter is missing: give its path, or a name found ~
                    in PATH)" path)
       (format nil "spawn: cannot run ~s" path))
   'event-error))

;;;# Spawning

(defun make-stdio-pipe (plist stream-p name)
  (let ((plist (copy-list plist))
        (read-cb (getf plist :read-cb)))
    (remf plist :read-cb)
    (let ((pipe/stream (apply #'init-tcp-socket read-cb :class 'pipe
                              :stream stream-p :function 'spawn plist)))
      (setf (pipe-name (socket-of pipe/stream)) name)
      pipe/stream)))

(defun spawn (path args &key exit-cb (event-cb #'error) (input :ignore)
                          (output :ignore) (error-output :ignore) env
                          working-directory)
  "Runs the program PATH (a pathname designator; without a \"/\" it is
looked up in the PATH of the child's environment) with ARGS (a list of
strings or pathnames: argv[1] on; argv[0] is PATH).  Returns (values
process input output error-output): the PROCESS, and the pipe (or async
stream) made for each of the child's standard input, output and error
output, or nil.

  :exit-cb       (lambda (process exit-status term-signal)), default nil:
                 when the child has ended; TERM-SIGNAL is the signal that
                 ended it, 0 if it exited by itself (EXIT-STATUS is then
                 0).  It runs once; it never runs if SPAWN signalled.
  :event-cb      (lambda (condition)), default #'ERROR: receives errors
                 raised in :exit-cb when the loop catches application
                 errors.
  :input         what the child's descriptor 0 is, default :ignore (see
                 below); an :input pipe is for writing to the child: it
                 stays open until you close it (CLOSE-SOCKET, or CLOSE on
                 its stream: the child then reads end of file) or the loop
                 ends, and when idle it does not keep the loop alive.
  :output        the child's descriptor 1, default :ignore.
  :error-output  the child's descriptor 2, default :ignore.  Output pipes
                 are read; at the child's exit their own event-cb gets a
                 SOCKET-EOF (default nil: dropped) and they close.
  :env           an alist of (name . value) strings: the child's whole
                 environment; default nil: this process's.
  :working-directory  the child's working directory (it must exist);
                 default nil: this process's.

A stdio spec is one of
  :ignore             /dev/null;
  :inherit            this process's descriptor of the same number;
  :pipe               a new PIPE (a socket: write to it, read from it,
                      close it as any socket);
  :stream             a new pipe wrapped in an async-io-stream;
  (:pipe key value ...), (:stream key value ...)  the same with
                      PIPE-CONNECT's keys: :read-cb (lambda (pipe octets))
                      or, for :stream, (lambda (pipe stream)); :event-cb
                      :data :connect-cb :write-cb :read-timeout
                      :write-timeout :dont-drain-read-buffer :read-buffer.
                      :data is
                      sent to the child at once; :connect-cb runs on the
                      next pass of the loop.  Another key signals an error;
  a string or pathname  a file: read for :input; created (or truncated)
                      and written for the others;
  an integer          that descriptor of this process.

Signals, whatever :event-cb is, with every pipe it made closed: a
FILESYSTEM-ENOENT, FILESYSTEM-EACCES or FILESYSTEM-EPERM if the program
cannot be run (missing, not executable, ...) or a stdio file cannot be
opened, or :working-directory does not exist; an error naming the
argument for a bad argument."
  (check-event-loop-running)
  (let* ((file (native-path-string path "the program (spawn's PATH)"))
         (argv (progn
                 (unless (listp args)
                   (error "spawn: ARGS must be a list of strings, not ~s." args))
                 (cons file
                       (loop :for a :in args
                             :collect (if (or (stringp a) (pathnamep a))
                                          (native-path-string a "an argument")
                                          (error "spawn: argument ~s is not a ~
                                                  string (ARGS is a list of ~
                                                  strings)." a))))))
         (c-env (check-environment env))
         (cwd (and working-directory (check-working-directory working-directory)))
         (specs (loop :for spec :in (list input output error-output)
                      :for argument :in '(:input :output :error-output)
                      :for fd :from 0
                      :collect (parse-stdio spec fd argument))))
    (when (zerop (length file))
      (error "spawn: PATH is empty: give the program to run."))
    (loop :for (kind nil fpath) :in specs
          :for argument :in '(:input :output :error-output)
          :for fd :from 0
          :when (eql kind cl-async-ffi:+stdio-file+)
            :do (check-stdio-file fpath fd argument))
    ;; Everything is checked: make the pipes, give them ids, spawn.
    (let* ((pipes (loop :for (kind nil nil plist stream-p) :in specs
                        :for name :in *stdio-names*
                        :collect (and (eql kind cl-async-ffi:+stdio-pipe+)
                                      (make-stdio-pipe
                                       plist stream-p
                                       (format nil "~a of ~a" name file)))))
           (ids (loop :for p :in pipes
                      :collect (and p (register-object (socket-of p)))))
           (process (make-instance 'process :path file :exit-cb exit-cb
                                            :event-cb event-cb))
           (pid-id (register-object process))
           (ok nil))
      (unwind-protect
           (multiple-value-bind (ptr code pointers)
               (cl-async-ffi:process-spawn
                (loop-pointer) pid-id file argv c-env cwd
                (loop :for (kind fd fpath) :in specs
                      :for id :in ids
                      :collect (list kind fd fpath id)))
             (unless ptr
               (error (spawn-error code file)))
             (setf ok t
                   (process-id process) pid-id
                   (process-c process) ptr
                   (slot-value process 'pid) (cl-async-ffi:process-pid ptr))
             (loop :for p :in pipes
                   :for id :in ids
                   :for pointer :in pointers
                   :when p
                     :do (let ((pipe (socket-of p)))
                           (attach-connection pipe id pointer)
                           (setf (socket-connected pipe) t)
                           (when (socket-connect-cb pipe)
                             (delay (lambda () (object-connected pipe))))))
             (setf (process-input process) (first pipes)
                   (process-output process) (second pipes)
                   (process-error-output process) (third pipes))
             (values process (first pipes) (second pipes) (third pipes)))
        (unless ok
          ;; C closed what it made; the objects die with their ids.
          (unregister-object pid-id)
          (loop :for p :in pipes
                :for id :in ids
                :when p
                  :do (unregister-object id)
                      (let ((pipe (socket-of p)))
                        (setf (streamish-closed pipe) t
                              (streamish-c pipe) nil
                              (socket-pending pipe) nil))))))))

;;;# Events

(defmethod object-exit ((process process) exit-status term-signal)
  (setf (process-c process) nil
        (process-exit-status process) exit-status
        (process-term-signal process) term-signal)
  (let ((cb (process-exit-cb process)))
    (when cb
      (catch-app-errors (process-event-cb process)
        (funcall cb process exit-status term-signal)))))

(defmethod object-event-cb ((process process)) (process-event-cb process))

(defmethod object-closed ((process process))
  (setf (process-c process) nil
        (process-id process) nil))

(defmethod object-loop-closed ((process process))
  (object-closed process))

;;;# Signals

(defun process-kill (process signal &key (event-cb #'error))
  "Sends SIGNAL (a signal number, e.g. +SIGTERM+) to PROCESS's child and
returns t; returns nil, sending nothing, once the child has exited.  A
failure (a number that is no signal) goes to EVENT-CB, default #'ERROR,
which signals it; with another event-cb, the result is nil."
  (check-type process process)
  (unless (integerp signal)
    (error "process-kill: SIGNAL must be a signal number (an integer such as ~
            as:+sigterm+), not ~s." signal))
  (let ((ptr (process-c process)))
    (when ptr
      (let ((rc (cl-async-ffi:process-kill ptr signal)))
        (cond ((zerop rc) t)
              ((eql rc cl-async-ffi:+eclosed+) nil)
              (t
               (let ((c (make-condition
                         'event-error
                         :code rc
                         :msg (format nil "process-kill: cannot send signal ~a ~
                                           to process ~a: ~a" signal
                                      (process-pid process)
                                      (cl-async-ffi:strerror rc)))))
                 (when event-cb (funcall event-cb c))
                 nil)))))))
