;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; pipe.lisp --- pipes (unix domain sockets): connecting, servers, and
;;;; the conditions of path errors.
;;;;
;;;; A pipe is a socket on the same C stream core as TCP: the connect
;;;; machinery (INIT-TCP-SOCKET, CONNECT-SOCKET) and the server machinery
;;;; (MAKE-SERVER) of tcp.lisp serve both; only the C connect and bind
;;;; differ.  A child process's stdio pipes (process.lisp) are pipes too.

(in-package #:cl-async)

;;;# Classes

(defclass pipe (socket)
  ((direction :accessor socket-direction :initarg :direction :initform :out
              :documentation ":out for a connection we made (PIPE-CONNECT,
a child's stdio), :in for one a PIPE-SERVER accepted.")
   (name :accessor pipe-name :initarg :name :initform nil
         :documentation "The path of the socket (for an accepted
connection, the server's), or a description of a child's stdio pipe."))
  (:documentation "A pipe: a connection over a unix domain socket (made by
PIPE-CONNECT or accepted by a PIPE-SERVER), or a child process's stdio
pipe (SPAWN).  It is a SOCKET: WRITE-SOCKET-DATA, CLOSE-SOCKET,
SOCKET-CLOSED-P, SOCKET-DATA, SET-SOCKET-TIMEOUTS, ENABLE-SOCKET /
DISABLE-SOCKET and async streams work on it, and CL-ASYNC-SSL:START-TLS
runs TLS over it."))

(defclass pipe-server (socket-server)
  ()
  (:documentation "A server listening on a unix domain socket, made by
PIPE-SERVER.  Close it with CLOSE-SOCKET-SERVER (or CLOSE-TCP-SERVER); the
socket file it made is removed then."))

(defmethod print-object ((p pipe) stream)
  (print-unreadable-object (p stream :type t :identity t)
    (format stream "~@[~a~]~:[~; closed~]" (pipe-name p) (streamish-closed p))))

(defmethod print-object ((s pipe-server) stream)
  (print-unreadable-object (s stream :type t :identity t)
    (format stream "~@[~a~]~:[~; closed~]" (socket-server-address s)
            (socket-server-closed s))))

(defmethod socket-label ((p pipe))
  (format nil "pipe ~a" (or (pipe-name p) "")))

(defmethod socket-condition-type ((p pipe) type)
  (if (eq type 'streamish-enoent) 'pipe-not-found type))

(defmethod server-socket-class ((server pipe-server))
  'pipe)

(defmethod socket-accepted ((server pipe-server) (socket pipe))
  (setf (pipe-name socket) (socket-server-address server)))

(setf (documentation 'pipe-name 'function)
      "The path of PIPE's socket (for a connection a PIPE-SERVER accepted,
the server's path).")

;;;# Paths

(defconstant +max-pipe-path-bytes+ 107
  "The longest path, in bytes, a unix socket address holds (Linux: 108
bytes with the terminating NUL).")

(defun pipe-path (name function)
  "NAME checked as the path of a unix socket for FUNCTION."
  (let* ((path (native-path-string name "the pipe name"))
         (bytes (length (babel:string-to-octets path :encoding :utf-8))))
    (when (zerop bytes)
      (error "~(~a~): the pipe name is empty: give the path of a unix ~
              socket." function))
    (when (> bytes +max-pipe-path-bytes+)
      (error "~(~a~): the pipe name ~s is ~d bytes long; a unix socket path ~
              holds at most ~d: use a shorter path (a directory nearer the ~
              root, or a relative name after changing directory)."
             function path bytes +max-pipe-path-bytes+))
    path))

;;;# Conditions from error codes

(defmethod server-bind-error ((server pipe-server) code)
  (let ((name (cl-async-ffi:err-name code))
        (path (socket-server-address server)))
    (cond ((string= name "EADDRINUSE")
           (make-condition
            'socket-address-in-use
            :socket server :code code :addr path
            :msg (format nil "cannot listen on pipe ~a: something already ~
                              exists at that path (remove it if it is a ~
                              stale socket, or pick another path)" path)))
          ((member name '("ENOENT" "EACCES" "EPERM") :test #'string=)
           (filesystem-condition code path
                                 (format nil "cannot listen on pipe ~a" path)))
          (t
           (make-condition
            'tcp-server-bind-error
            :socket server :code code :addr path
            :msg (format nil "cannot listen on pipe ~a: ~a" path
                         (cl-async-ffi:strerror code)))))))

;;;# Connecting

(defun pipe-connect (name read-cb &key data stream event-cb connect-cb write-cb
                                    (read-timeout -1) (write-timeout -1)
                                    (dont-drain-read-buffer
                                     nil dont-drain-read-buffer-p)
                                    read-buffer)
  "Connects to the unix domain socket NAME (a pathname designator: a
string is used as it is, a pathname as the system names it) and returns
the PIPE at once, or its async-io-stream with :STREAM t.  Data written
before the connection is up is held and sent right after it, as for
TCP-CONNECT.

  read-cb        (lambda (pipe octets)), or (lambda (pipe stream)) with
                 :stream t; nil discards what arrives.
  :event-cb      (lambda (condition)), default nil: errors and the end of
                 the connection, on a later pass of the loop, after the
                 pipe was closed.  Nothing at NAME gives a PIPE-NOT-FOUND
                 (a STREAMISH-ENOENT), a socket nobody listens on (or a
                 file that is no socket) a SOCKET-REFUSED, no permission
                 a SOCKET-ERROR; the peer closing a SOCKET-EOF.
  :connect-cb    (lambda (pipe-or-stream)), default nil: once connected,
                 before the data written earlier is sent.
  :write-cb      (lambda (pipe)), default nil: once written data reached
                 the kernel.
  :data          a string (sent as UTF-8) or octets, default nil: sent
                 once connected.
  :stream        default nil; t: return an async-io-stream over the pipe.
  :read-timeout  seconds without data (it also bounds connecting), default
                 -1: none.
  :write-timeout seconds without write progress, default -1: none.
  :dont-drain-read-buffer  default t with :stream t, else nil: received
                 data stays in the stream and read-cb gets the stream.
  :read-buffer   :fresh (default) or :reuse: read-cb gets a vector reused
                 once it returns (see TCP-CONNECT).

Signals an error at once if NAME is not a path a unix socket can have
(empty, or longer than 107 bytes)."
  (check-event-loop-running)
  (check-type data (or null string (simple-array octet (*))))
  (let* ((path (pipe-path name 'pipe-connect))
         (socket/stream
           (apply #'init-tcp-socket read-cb
                  :class 'pipe :event-cb event-cb :data data :stream stream
                  :connect-cb connect-cb :write-cb write-cb
                  :read-timeout read-timeout :write-timeout write-timeout
                  :read-buffer read-buffer :function 'pipe-connect
                  (and dont-drain-read-buffer-p
                       (list :dont-drain-read-buffer dont-drain-read-buffer)))))
    (setf (pipe-name (socket-of socket/stream)) path)
    (connect-socket socket/stream
                    (lambda (loop id) (cl-async-ffi:pipe-connect loop id path)))))

;;;# Servers

(defun pipe-server (name read-cb &key event-cb connect-cb backlog stream fd
                                     read-buffer)
  "Listens on a new unix domain socket at NAME (a pathname designator: a
string is used as it is, a pathname as the system names it) and returns a
PIPE-SERVER.  Every connection it accepts is a PIPE.  Close it with
CLOSE-SOCKET-SERVER (or CLOSE-TCP-SERVER); that removes the socket file
it made, and nothing else: a file someone else put at NAME meanwhile
stays.  Closing it does not close the connections it accepted.

  read-cb      (lambda (pipe octets)), or (lambda (pipe stream)) with
               :stream t.
  :event-cb    (lambda (condition)), default nil: the events of accepted
               connections (SOCKET-EOF, ...), and accept failures
               (SOCKET-ACCEPT-ERROR; the server pauses and retries).
  :connect-cb  (lambda (pipe-or-stream)), default nil: for each accepted
               connection, before its first read.
  :backlog     the listen backlog; default nil (or a non-positive
               number): 128.
  :stream      default nil; t: each connection gets an async-io-stream and
               read-cb gets (pipe stream).
  :fd          default nil; a file descriptor of a bound unix socket to
               listen on instead of NAME (adopted: closed with the server,
               its file never removed).
  :read-buffer :fresh (default) or :reuse, for every accepted connection
               (see TCP-CONNECT).

Signals, whatever :event-cb is: SOCKET-ADDRESS-IN-USE if anything exists
at NAME (a live server, a stale socket or any other file);
FILESYSTEM-ENOENT if its directory does not exist; FILESYSTEM-EACCES or
FILESYSTEM-EPERM without the permission to create it there.  (The
original cl-async gives FILESYSTEM-EACCES for a missing directory, from a
quirk of libuv; this gives the real error.)"
  (let ((path (if fd
                  (and name (native-path-string name "the pipe name"))
                  (pipe-path name 'pipe-server))))
    (when (and fd (not (and (integerp fd) (>= fd 0))))
      (error "pipe-server: :fd must be a file descriptor (an integer >= 0), ~
              not ~s." fd))
    (make-server 'pipe-server path nil read-cb
                 :event-cb event-cb :connect-cb connect-cb :backlog backlog
                 :stream stream :read-buffer read-buffer :function 'pipe-server
                 :listener (lambda (loop id backlog)
                             (if fd
                                 (cl-async-ffi:pipe-open-fd loop id fd backlog)
                                 (cl-async-ffi:pipe-listen loop id path
                                                           backlog))))))
