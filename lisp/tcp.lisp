;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; tcp.lisp --- outgoing TCP connections and TCP servers.

(in-package #:cl-async)

(defun split-event-cb (args)
  "Upstream's deprecated calling style passes the event-cb positionally
before the keywords; returns (values event-cb keyword-args)."
  (if (and args (oddp (length args))
           (or (null (first args)) (not (keywordp (first args)))))
      (progn
        (when (first args)
          (warn "cl-async: passing the event-cb positionally is deprecated; ~
                 use :event-cb."))
        (values (first args) (rest args)))
      (values (getf args :event-cb) args)))

(defun check-port (port &optional (allow-zero nil) (function 'tcp-connect))
  (unless (and (integerp port) (<= (if allow-zero 0 1) port 65535))
    (argument-error function 'port "invalid port ~s: give an integer from ~a ~
                                    to 65535." port (if allow-zero 0 1))))

(defparameter *tcp-connect-keywords*
  '(:event-cb :data :stream :connect-cb :write-cb :read-timeout :write-timeout
    :dont-drain-read-buffer :read-buffer)
  "The keywords TCP-CONNECT takes.")

(defparameter *tcp-server-keywords*
  '(:event-cb :connect-cb :backlog :stream :fd :reuse-port :read-buffer)
  "The keywords TCP-SERVER takes.")

;;;# Connecting

(defun init-tcp-socket (read-cb &key event-cb data stream connect-cb write-cb
                                  (read-timeout -1) (write-timeout -1)
                                  (dont-drain-read-buffer
                                   nil dont-drain-read-buffer-supplied-p)
                                  read-buffer
                                  (class 'tcp-socket) (function 'tcp-connect))
  "Makes an unconnected socket (or its async-io-stream with :stream t),
ready for CONNECT-TCP-SOCKET; the keywords are TCP-CONNECT's (FUNCTION:
the one named in argument errors).  Data written to it is held until it
connects."
  (check-event-loop-running)
  (let* ((socket (make-instance class :read-cb read-cb :event-cb event-cb
                                      :connect-cb connect-cb :write-cb write-cb
                                      :read-timeout read-timeout
                                      :write-timeout write-timeout
                                      :read-buffer (check-read-buffer
                                                    function read-buffer)))
         (stream (when stream (attach-stream socket)))
         (dont-drain (if dont-drain-read-buffer-supplied-p
                         dont-drain-read-buffer
                         (and stream t))))
    (setf (streamish-drain-read-buffer socket) (not dont-drain))
    (when data
      (write-socket-data socket data))
    (or stream socket)))

(defun socket-of (socket/stream)
  (if (typep socket/stream 'async-stream)
      (stream-socket socket/stream)
      socket/stream))

(defun attach-connection (socket id ptr)
  "Gives SOCKET (made by INIT-TCP-SOCKET, registered under ID) its C
connection PTR: the socket's layer starts (SOCKET-ATTACHED), its timeouts
are set, and the data written to it so far is handed to C, in order (C
holds it until the connection is up)."
  (setf (socket-id socket) id
        (streamish-c socket) ptr)
  (socket-attached socket)
  (let ((rt (socket-read-timeout socket))
        (wt (socket-write-timeout socket)))
    (when (or (plusp (timeout-ms rt)) (plusp (timeout-ms wt)))
      (set-socket-timeouts socket rt wt)))
  (loop :for octets :in (reverse (shiftf (socket-pending socket) nil))
        :do (write-socket-data socket octets))
  socket)

(defun connect-socket (socket/stream connector &key event-cb)
  "Connects a socket made by INIT-TCP-SOCKET: CONNECTOR, a function of (loop
id), starts the C connection and returns (values connection-pointer code).
A failure to start signals the condition for the code.  Returns
SOCKET/STREAM."
  (check-event-loop-running)
  (let ((socket (socket-of socket/stream)))
    (when event-cb (setf (socket-event-cb socket) event-cb))
    (when (streamish-c socket)
      (error "cl-async: ~a is already connected." socket))
    (when (streamish-closed socket)
      (error 'socket-closed :socket socket :code -1
                            :msg "cannot connect a closed socket"))
    (let ((id (register-object socket)))
      (multiple-value-bind (ptr code) (funcall connector (loop-pointer) id)
        (unless ptr
          (unregister-object id)
          (error (socket-error-condition socket code)))
        (attach-connection socket id ptr)))
    socket/stream))

(defun connect-tcp-socket (socket/stream host port &key event-cb)
  "Connects a socket made by INIT-TCP-SOCKET to HOST (an IPv4/IPv6 literal
or a name, resolved asynchronously, each address tried in turn) on PORT.
Returns SOCKET/STREAM."
  (check-event-loop-running)
  (unless (and (stringp host) (plusp (length host)))
    (argument-error 'tcp-connect 'host "~s is not a host: give a name or an ~
                                        address as a string, such as ~
                                        \"example.com\" or \"127.0.0.1\"." host))
  (check-port port)
  (let ((socket (socket-of socket/stream)))
    (unless (or (streamish-c socket) (streamish-closed socket))
      (setf (socket-host socket) host
            (socket-port socket) port)))
  (connect-socket socket/stream
                  (lambda (loop id) (cl-async-ffi:tcp-connect loop id host port))
                  :event-cb event-cb))

(defun tcp-connect (host port read-cb &rest args)
  "Opens a TCP connection to HOST:PORT and returns the socket at once (or
an async-io-stream with :stream t); writes are held until it connects.
HOST is an IPv4 or IPv6 literal or a name (resolved asynchronously, IPv4
and IPv6, each address tried in turn).

  read-cb            (lambda (socket octets)), or (lambda (socket stream))
                     with :stream t; nil discards data.
  :event-cb          (lambda (condition)): errors and EOF, on a later pass,
                     after the socket was closed.
  :connect-cb        (lambda (socket-or-stream)) once connected, before
                     the data written earlier is sent.
  :write-cb          (lambda (socket)) once written data reached the kernel.
  :data              a string or octets to send once connected.
  :stream            t: return an async-io-stream wrapping the socket.
  :read-timeout      seconds without data (also bounds connecting); -1 none.
  :write-timeout     seconds of no write progress; -1 none.
  :dont-drain-read-buffer  with :stream t (default t there): data goes to
                     the stream and read-cb gets the stream.
  :read-buffer       :fresh (default): read-cb gets a fresh simple octet
                     vector, which it may keep.  :reuse: it gets an octet
                     vector with a fill pointer that is reused (refilled
                     for the next read of any socket of the loop) once it
                     returns: use it inside the callback (write-socket-data
                     sends from it without a copy) and copy what you keep.
                     It saves allocating and zero-filling a vector per
                     read.  (With :stream t the data goes to the stream's
                     own buffer either way.)"
  (multiple-value-bind (event-cb args) (split-event-cb args)
    (check-keywords 'tcp-connect args *tcp-connect-keywords*)
    (let ((args (copy-list args)))
      (remf args :event-cb)
      (connect-tcp-socket (apply #'init-tcp-socket read-cb :event-cb event-cb
                                 args)
                          host port))))

;;;# Servers

(defun check-bind-address (address)
  (unless (or (null address) (ip-address-p address))
    (argument-error 'tcp-server 'bind-address
                    "invalid address (not IPv4 or IPv6): ~s.  Give an IP ~
                     literal such as \"127.0.0.1\" or \"::\", or nil for ~
                     every IPv4 address." address)))

(defgeneric server-bind-error (server code)
  (:documentation "The condition signalled when SERVER cannot listen (error
CODE).")
  (:method ((server socket-server) code)
    (let* ((name (cl-async-ffi:err-name code))
           (where (format nil "~a:~a" (or (socket-server-address server) "0.0.0.0")
                          (socket-server-port server)))
           (msg (format nil "cannot listen on ~a: ~a~a" where
                        (cl-async-ffi:strerror code)
                        (if (string= name "EADDRINUSE")
                            " (pick another port, or 0 for any free one)"
                            ""))))
      (make-condition (if (string= name "EADDRINUSE")
                          'socket-address-in-use
                          'tcp-server-bind-error)
                      :socket server :code code :msg msg
                      :addr (socket-server-address server)
                      :port (socket-server-port server)))))

(defun make-server (class bind-address port read-cb &key event-cb connect-cb
                                                       backlog stream fd reuse-port
                                                       read-buffer
                                                       before-listen listener
                                                       (function 'tcp-server))
  "Listens like TCP-SERVER with a server of CLASS (FUNCTION: the one named
in argument errors).  BEFORE-LISTEN, if given,
is called with the new server object before it listens.  LISTENER, if
given, replaces the TCP bind: a function of (loop id backlog) returning
(values server-pointer code); BIND-ADDRESS and PORT are then only stored."
  (check-event-loop-running)
  (unless listener
    (check-bind-address bind-address)
    (unless fd (check-port port t 'tcp-server)))
  (let* ((server (make-instance class :read-cb read-cb :event-cb event-cb
                                      :connect-cb connect-cb :stream stream
                                      :address bind-address :port port
                                      :read-buffer (check-read-buffer
                                                    function read-buffer)))
         (id (progn (when before-listen (funcall before-listen server))
                    (register-object server)))
         (backlog (if (and (integerp backlog) (plusp backlog)) backlog 128)))
    (multiple-value-bind (ptr code)
        (cond (listener (funcall listener (loop-pointer) id backlog))
              (fd (cl-async-ffi:server-open-fd (loop-pointer) id fd backlog))
              (t (cl-async-ffi:server-listen
                  (loop-pointer) id bind-address port backlog
                  (if reuse-port cl-async-ffi:+listen-reuseport+ 0))))
      (unless ptr
        (unregister-object id)
        (setf (socket-server-closed server) t)
        (error (server-bind-error server code)))
      (setf (socket-server-id server) id
            (socket-server-c server) ptr)
      (unless listener
        (setf (socket-server-port server) (cl-async-ffi:server-port ptr))))
    (handler-bind ((error (lambda (e)
                            (declare (ignore e))
                            (close-socket-server server))))
      (server-attached server))
    server))

(defun tcp-server (bind-address port read-cb &rest args)
  "Listens for TCP connections on BIND-ADDRESS (an IPv4/IPv6 literal, or
nil for every IPv4 address) and PORT (0: any free port; see
TCP-SERVER-PORT).  Signals SOCKET-ADDRESS-IN-USE (a TCP-SERVER-BIND-ERROR)
if it cannot listen.

  read-cb      (lambda (socket octets)), or (lambda (socket stream)).
  :event-cb    (lambda (condition)): events of accepted sockets, and
               accept failures (SOCKET-ACCEPT-ERROR, e.g. out of file
               descriptors: the server pauses and retries by itself).
  :connect-cb  (lambda (socket-or-stream)) for each accepted connection,
               before its first read.
  :backlog     listen backlog (default 128).
  :stream      t: each connection gets an async-io-stream.
  :fd          listen on this already bound socket instead.
  :reuse-port  t: SO_REUSEPORT, so that several servers (one event loop
               per thread, or several processes) listen on one port and
               the kernel spreads the connections over them.
  :read-buffer :fresh (default) or :reuse, for every accepted connection
               (see TCP-CONNECT).

An unknown keyword or a bad address or port signals an ARGUMENT-ERROR."
  (multiple-value-bind (event-cb args) (split-event-cb args)
    (check-keywords 'tcp-server args *tcp-server-keywords*)
    (let ((args (copy-list args)))
      (remf args :event-cb)
      (apply #'make-server 'tcp-server bind-address port read-cb
             :event-cb event-cb args))))

(defun tcp-server-port (server)
  "The port SERVER listens on (useful after listening on port 0)."
  (socket-server-port server))

(defmethod object-accept ((server socket-server) conn)
  (if (socket-server-closed server)
      0
      (let* ((socket (make-instance (server-socket-class server)
                                    :direction :in
                                    :read-cb (socket-server-read-cb server)
                                    :event-cb (socket-server-event-cb server)
                                    :connect-cb (socket-server-connect-cb server)
                                    :read-buffer (socket-server-read-buffer server)))
             (id (register-object socket)))
        (setf (socket-id socket) id
              (streamish-c socket) conn)
        (multiple-value-bind (host port) (cl-async-ffi:tcp-peer-address conn)
          (when host                    ; TCP only
            (setf (socket-host socket) host
                  (socket-port socket) port)))
        (when (socket-server-stream server)
          (attach-stream socket)
          (setf (streamish-drain-read-buffer socket) nil))
        (socket-accepted server socket)
        (when (accept-connects-p server)
          (object-connected socket))
        id)))
