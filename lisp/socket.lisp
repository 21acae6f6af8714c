;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; socket.lisp --- streamish and socket objects: writing, closing,
;;;; timeouts, pausing, and the events a connection receives.

(in-package #:cl-async)

;;;# Classes

(defclass streamish ()
  ((c :accessor streamish-c :initarg :c :initform nil
      :documentation "The C connection (a foreign pointer), nil before it
exists and after it is closed.")
   (data :accessor streamish-data :initarg data :initarg :data :initform nil
         :documentation "Free for the application's use.")
   (closed :accessor streamish-closed :initform nil
           :documentation "True once closed (by either side).")
   (drain-read-buffer :accessor streamish-drain-read-buffer
                      :initarg :drain-read-buffer :initform t
                      :documentation "If nil and the socket has a stream,
received data is appended to the stream and read-cb gets the stream."))
  (:documentation "Something that reads and writes asynchronously."))

(defclass socket (streamish)
  ((c :accessor socket-c)
   (data :accessor socket-data)
   (id :accessor socket-id :initform nil)
   (read-cb :accessor socket-read-cb :initarg :read-cb :initform nil)
   (write-cb :accessor socket-write-cb :initarg :write-cb :initform nil)
   (event-cb :accessor socket-event-cb :initarg :event-cb :initform nil)
   (connect-cb :accessor socket-connect-cb :initarg :connect-cb :initform nil)
   (read-buffer :accessor socket-read-buffer :initarg :read-buffer
                :initform :fresh
                :documentation ":fresh (the read-cb gets a fresh vector it may
keep) or :reuse (a vector reused once the read-cb returns).")
   (stream :accessor socket-stream :initform nil
           :documentation "The async-io-stream made with :stream t.")
   (connected :accessor socket-connected :initform nil)
   (host :accessor socket-host :initarg :host :initform nil)
   (port :accessor socket-port :initarg :port :initform nil)
   (pending :accessor socket-pending :initform nil
            :documentation "Writes made before the C connection exists
(INIT-TCP-SOCKET without CONNECT-TCP-SOCKET), newest first.")
   (read-timeout :accessor socket-read-timeout :initarg :read-timeout
                 :initform nil)
   (write-timeout :accessor socket-write-timeout :initarg :write-timeout
                  :initform nil))
  (:documentation "A connection.  SOCKET-DATA is free for the application;
every cl-async function that takes a socket accepts any subclass."))

(defclass tcp-socket (socket)
  ((direction :accessor socket-direction :initarg :direction :initform :out
              :documentation ":out for connections we made, :in for accepted
ones."))
  (:documentation "A TCP connection (outgoing, or accepted by a server)."))

(defclass socket-server ()
  ((c :accessor socket-server-c :initform nil
      :documentation "The C server (a foreign pointer).")
   (id :accessor socket-server-id :initform nil)
   (closed :accessor socket-server-closed :initform nil)
   (read-cb :accessor socket-server-read-cb :initarg :read-cb :initform nil)
   (event-cb :accessor socket-server-event-cb :initarg :event-cb :initform nil)
   (connect-cb :accessor socket-server-connect-cb :initarg :connect-cb
               :initform nil)
   (read-buffer :accessor socket-server-read-buffer :initarg :read-buffer
                :initform :fresh
                :documentation "The :read-buffer of the sockets it accepts.")
   (stream :accessor socket-server-stream :initarg :stream :initform nil)
   (address :accessor socket-server-address :initarg :address :initform nil)
   (port :accessor socket-server-port :initarg :port :initform nil))
  (:documentation "A listening server."))

(defclass tcp-server (socket-server)
  ()
  (:documentation "A TCP server, returned by TCP-SERVER.  Close it with
CLOSE-TCP-SERVER."))

(defmethod print-object ((s socket) stream)
  (print-unreadable-object (s stream :type t :identity t)
    (format stream "~@[~a~]~@[:~a~]~:[~; closed~]"
            (socket-host s) (socket-port s) (streamish-closed s))))

(defmethod print-object ((s socket-server) stream)
  (print-unreadable-object (s stream :type t :identity t)
    (format stream "~a:~a~:[~; closed~]"
            (or (socket-server-address s) "0.0.0.0") (socket-server-port s)
            (socket-server-closed s))))

(defun tcp-server-closed (server)
  "True once SERVER is closed (upstream's tests use this)."
  (socket-server-closed server))

(defun socket-socket (socket)
  "Compatibility: the socket itself."
  socket)

;;;# Extension points (cl-async-ext)

(defgeneric socket-attached (socket)
  (:documentation "Called once SOCKET's C connection exists, before data
written earlier is handed to it (the TLS layer starts its filter here).")
  (:method ((socket socket)) nil))

(defgeneric socket-accepted (server socket)
  (:documentation "Called when SERVER has accepted SOCKET, before its
connect-cb.")
  (:method ((server socket-server) socket)
    (declare (ignore socket))
    nil))

(defgeneric server-attached (server)
  (:documentation "Called once SERVER listens (the TLS layer sets its
context here).")
  (:method ((server socket-server)) nil))

(defgeneric server-socket-class (server)
  (:documentation "The class of the sockets SERVER accepts.")
  (:method ((server socket-server)) 'tcp-socket))

(defgeneric accept-connects-p (server)
  (:documentation "True if SERVER's connect-cb runs when a connection is
accepted; the TLS layer runs it after the handshake instead.")
  (:method ((server socket-server)) t))

(defvar *error-code-conditions* (make-hash-table)
  "Error code -> function of (socket code detail) making the condition, for
codes the core does not know (the TLS layer registers its own).")

(defun register-error-code (code constructor)
  "Makes CONSTRUCTOR, a function of (socket code detail), build the
condition for socket errors with CODE."
  (setf (gethash code *error-code-conditions*) constructor))

;;;# Conditions for error codes

(defgeneric socket-label (socket)
  (:documentation "How SOCKET is named in messages: \"host:port\" for a TCP
connection (\"connection\" before it has an address); pipes name their
path.")
  (:method ((socket socket))
    (if (socket-host socket)
        (format nil "~a:~a" (socket-host socket) (socket-port socket))
        "connection")))

(defgeneric socket-condition-type (socket type)
  (:documentation "The condition class to make for an error of the generic
class TYPE on SOCKET: a socket class may refine it (a pipe gives
PIPE-NOT-FOUND for STREAMISH-ENOENT).")
  (:method ((socket socket) type) type))

(defun socket-error-condition (socket code &optional detail)
  "The condition for error CODE on SOCKET (DETAIL: the C library's text)."
  (let* ((name (cl-async-ffi:err-name code))
         (text (if (and detail (plusp (length detail)))
                   detail
                   (cl-async-ffi:strerror code)))
         (msg (format nil "~a: ~a" (socket-label socket) text))
         (custom (gethash code *error-code-conditions*)))
    (flet ((make (type &optional (code code) (msg msg))
             (make-condition (socket-condition-type socket type)
                             :socket socket :code code :msg msg)))
      (cond (custom (funcall custom socket code text))
            ((eql code cl-async-ffi:+eof+)
             (make 'socket-eof 0 (format nil "~a: the peer closed the connection"
                                         (socket-label socket))))
            ((string= name "ECONNRESET") (make 'socket-reset))
            ((string= name "ETIMEDOUT") (make 'socket-timeout))
            ((string= name "ECONNREFUSED") (make 'socket-refused))
            ((string= name "ECONNABORTED") (make 'socket-aborted))
            ((string= name "EPIPE") (make 'streamish-broken-pipe))
            ((string= name "ECANCELED") (make 'streamish-canceled))
            ((string= name "ENOENT") (make 'streamish-enoent))
            ((and (>= (length name) 4) (string= "EAI_" name :end2 4))
             (dns-error-for (socket-host socket) code))
            ((eql code cl-async-ffi:+eclosed+)
             (make 'socket-closed code (format nil "~a: the socket is closed"
                                               (socket-label socket))))
            (t (make 'socket-error))))))

(defun signal-socket-error (socket code)
  "Signals the condition for CODE on SOCKET."
  (error (socket-error-condition
          socket code
          (and (streamish-c socket)
               (cl-async-ffi:tcp-error-text (streamish-c socket))))))

;;;# Writing

(defgeneric streamish-closed-p (streamish)
  (:documentation "True once STREAMISH is closed."))

(defmethod streamish-closed-p ((s streamish))
  (streamish-closed s))

(defun socket-closed-p (socket)
  "True once SOCKET is closed, by either side."
  (streamish-closed-p socket))

(defgeneric check-streamish-open (streamish)
  (:documentation "Signals STREAMISH-CLOSED if STREAMISH is closed."))

(defmethod check-streamish-open ((s streamish))
  (when (streamish-closed s)
    (error 'streamish-closed :socket s :code -1
                             :msg "This socket is closed: open a new connection.")))

(defun octet-view (data)
  "DATA as octets, without copying octets: (values vector offset length),
VECTOR a simple octet vector whose bytes OFFSET .. OFFSET+LENGTH are DATA's.
DATA is a string (encoded as UTF-8) or a vector of octets: a simple one, or
one with a fill pointer or displaced to one (such as what a read-cb gets
with :read-buffer :reuse)."
  (flet ((whole (v) (values v 0 (length v))))
    (typecase data
      ((simple-array (unsigned-byte 8) (*)) (whole data))
      (string (whole (babel:string-to-octets data :encoding :utf-8)))
      ((vector (unsigned-byte 8))
       (multiple-value-bind (target offset) (array-displacement data)
         (cond ((null target)
                (values (sb-ext:array-storage-vector data) 0 (length data)))
               ((typep target '(simple-array (unsigned-byte 8) (*)))
                (values target offset (length data)))
               (t (whole (coerce data '(simple-array (unsigned-byte 8) (*))))))))
      (vector (if (every (lambda (e) (typep e '(unsigned-byte 8))) data)
                  (whole (coerce data '(simple-array (unsigned-byte 8) (*))))
                  (argument-error 'write-socket-data 'data
                                  "~s holds something that is not an octet: ~
                                   give a string or a vector of octets (0-255)."
                                  data)))
      (t (argument-error 'write-socket-data 'data
                         "~s is neither a string nor a vector of octets: give ~
                          a string (sent as UTF-8) or octets." data)))))

(defgeneric streamish-write (streamish data &key &allow-other-keys)
  (:documentation "Writes DATA (a string, sent as UTF-8, or octets) to
STREAMISH.  See WRITE-SOCKET-DATA."))

(defmethod streamish-write ((socket socket) data
                            &key start end read-cb write-cb event-cb force)
  (when read-cb (setf (socket-read-cb socket) read-cb))
  (when write-cb (setf (socket-write-cb socket) write-cb))
  (when event-cb (setf (socket-event-cb socket) event-cb))
  (when (streamish-closed socket)
    (error 'socket-closed :socket socket :code -1
                          :msg (format nil "~a: cannot write to a closed socket; ~
                                            open a new connection"
                                       (socket-label socket))))
  (multiple-value-bind (octets offset len) (octet-view data)
    (let ((start (or start 0))
          (end (or end len))
          (ptr (streamish-c socket)))
      (unless (<= 0 start end len)
        (error "write-socket-data: bad :start ~a / :end ~a for ~a bytes of data."
               start end len))
      (if (null ptr)
          (push (subseq octets (+ offset start) (+ offset end))
                (socket-pending socket))
          (let ((rc (cl-async-ffi:tcp-write
                     ptr octets (+ offset start) (+ offset end)
                     (logior (if (or force (not *buffer-writes*))
                                 cl-async-ffi:+write-now+ 0)
                             (if (socket-write-cb socket)
                                 cl-async-ffi:+write-notify+ 0)))))
            (unless (zerop rc)
              (signal-socket-error socket rc))))))
  nil)

(defun write-socket-data (socket data &rest args
                          &key start end read-cb write-cb event-cb force)
  "Writes DATA (a string, sent as UTF-8, or a vector of octets) to SOCKET.
The bytes are copied at once; the vector may be reused right away.
  :start :end  byte offsets into the (encoded) data.
  :write-cb    (lambda (socket)) called when everything written so far has
               been handed to the kernel; it becomes the socket's write-cb.
  :read-cb :event-cb  replace the socket's callbacks.
  :force       send now instead of at the end of the loop pass.
Writes made in one pass of the loop are coalesced (*BUFFER-WRITES*).
Writes made before the connection (or its TLS handshake) completes are
held and sent in order right after it.  Signals SOCKET-CLOSED on a closed
socket."
  (declare (ignore start end read-cb write-cb event-cb force))
  (apply #'streamish-write socket data args))

;;;# Closing

(defgeneric close-streamish (streamish &key force)
  (:documentation "Closes STREAMISH.  See CLOSE-SOCKET."))

(defmethod close-streamish ((socket socket) &key force)
  (unless (streamish-closed socket)
    (setf (streamish-closed socket) t)
    (let ((ptr (streamish-c socket)))
      (when ptr
        (cl-async-ffi:tcp-close ptr force))))
  nil)

(defun close-socket (socket &key force)
  "Closes SOCKET.  Normally queued data is sent first (on TLS, then a
close_notify), then the connection is shut down; with :FORCE it closes at
once and queued data is dropped.  Closing a closed socket does nothing."
  (close-streamish socket :force force))

(defgeneric close-socket-server (server)
  (:documentation "Stops SERVER from accepting connections.  Connections
it accepted stay open.  Idempotent."))

(defmethod close-socket-server ((server socket-server))
  (unless (socket-server-closed server)
    (setf (socket-server-closed server) t)
    (let ((ptr (socket-server-c server)))
      (when ptr (cl-async-ffi:server-close ptr))))
  nil)

(defun close-tcp-server (server)
  "Stops SERVER (see CLOSE-SOCKET-SERVER)."
  (close-socket-server server))

;;;# Timeouts, pausing, queries

(defun timeout-ms (seconds)
  "Milliseconds for a timeout of SECONDS; 0 (none) unless a positive real."
  (if (and (realp seconds) (plusp seconds))
      (max 1 (round (* seconds 1000)))
      0))

(defun set-socket-timeouts (socket read-sec write-sec &key socket-is-uvstream)
  "Sets SOCKET's read timeout (no data received for READ-SEC seconds; it
also bounds connecting) and write timeout (queued data making no progress
for WRITE-SEC seconds).  Nil, -1 or 0 clears one.  When one expires the
event-cb gets a SOCKET-TIMEOUT and the socket closes.  May be called any
number of times.  Signals STREAMISH-CLOSED on a closed socket."
  (declare (ignore socket-is-uvstream))
  (check-streamish-open socket)
  (setf (socket-read-timeout socket) read-sec
        (socket-write-timeout socket) write-sec)
  (let ((ptr (streamish-c socket)))
    (when ptr
      (cl-async-ffi:tcp-set-timeouts ptr (timeout-ms read-sec)
                                     (timeout-ms write-sec))))
  nil)

(defun enable-socket (socket &key read write)
  "Resumes reading on SOCKET (with :READ t) after DISABLE-SOCKET.  Writes
are never paused, so :WRITE has nothing to resume."
  (declare (ignore write))
  (check-streamish-open socket)
  (when (and read (streamish-c socket))
    (cl-async-ffi:tcp-read-start (streamish-c socket)))
  nil)

(defun disable-socket (socket &key read write)
  "Pauses reading on SOCKET (with :READ t): the read-cb is not called and
the peer is slowed down by TCP flow control until ENABLE-SOCKET.  Writes
cannot be paused (:WRITE t signals an error): stop writing instead, and
use SOCKET-WRITE-QUEUE-SIZE or the write-cb to pace output."
  (check-streamish-open socket)
  (when write
    (error "disable-socket: writes cannot be paused; stop calling ~
            write-socket-data and wait for the write-cb instead."))
  (when (and read (streamish-c socket))
    (cl-async-ffi:tcp-read-stop (streamish-c socket)))
  nil)

(defun socket-write-queue-size (socket)
  "Bytes written to SOCKET and not yet handed to the kernel (plaintext held
for a TLS handshake included).  Use it with the write-cb for backpressure."
  (let ((ptr (streamish-c socket)))
    (cond (ptr (cl-async-ffi:tcp-write-queue-size ptr))
          (t (reduce #'+ (socket-pending socket) :key #'length)))))

(defun socket-peer-address (socket)
  "The peer's address and port (two values), or nil."
  (let ((ptr (streamish-c socket)))
    (and ptr (not (streamish-closed socket))
         (multiple-value-bind (address port) (cl-async-ffi:tcp-peer-address ptr)
           (and address (values address port))))))

(defun socket-local-address (socket)
  "The local address and port (two values), or nil."
  (let ((ptr (streamish-c socket)))
    (and ptr (not (streamish-closed socket))
         (multiple-value-bind (address port) (cl-async-ffi:tcp-local-address ptr)
           (and address (values address port))))))

(defun socket-address (socket)
  "The peer's address (a string), or nil."
  (values (socket-peer-address socket)))

(defmethod ref ((socket socket))
  (when (streamish-c socket) (cl-async-ffi:handle-ref (streamish-c socket) t)))

(defmethod unref ((socket socket))
  (when (streamish-c socket) (cl-async-ffi:handle-ref (streamish-c socket) nil)))

(defmethod ref ((server socket-server))
  (when (socket-server-c server)
    (cl-async-ffi:handle-ref (socket-server-c server) t)))

(defmethod unref ((server socket-server))
  (when (socket-server-c server)
    (cl-async-ffi:handle-ref (socket-server-c server) nil)))

;;;# Events on sockets

(defun socket-callback-target (socket)
  (or (socket-stream socket) socket))

(defmethod object-connected ((socket socket))
  (setf (socket-connected socket) t)
  (let ((cb (socket-connect-cb socket)))
    (when (and cb (not (streamish-closed socket)))
      (catch-app-errors (socket-event-cb socket)
        (funcall cb (socket-callback-target socket))))))

(defun check-read-buffer (function value)
  "VALUE as a :read-buffer setting of FUNCTION (:fresh or :reuse; nil is
:fresh), or an ARGUMENT-ERROR."
  (case value
    ((nil :fresh) :fresh)
    (:reuse :reuse)
    (t (argument-error function :read-buffer
                       "~s: give :reuse (the read-cb gets a vector that is ~
                        reused once it returns: copy what you keep) or ~
                        :fresh (the default: a fresh vector it may keep)."
                       value))))

(defun reused-read-vector (pointer length)
  "The current loop's reused read vector, holding the LENGTH bytes at
POINTER: an adjustable octet vector with a fill pointer at LENGTH, the
same object for every read of every socket of the loop with :read-buffer
:reuse (its storage grows when a read needs more, and is then kept)."
  (let* ((base *event-base*)
         (v (or (loop-read-vector base)
                (setf (loop-read-vector base)
                      (make-array (max length 65536) :element-type 'octet
                                                     :adjustable t :fill-pointer 0)))))
    (when (< (array-dimension v 0) length)
      (adjust-array v (max length (* 2 (array-dimension v 0)))))
    (cl-async-ffi:copy-foreign-octets pointer length
                                      (sb-ext:array-storage-vector v) 0)
    (setf (fill-pointer v) length)
    v))

(defmethod object-read ((socket socket) pointer length)
  (unless (streamish-closed socket)
    (let ((cb (socket-read-cb socket))
          (stream (socket-stream socket)))
      (catch-app-errors (socket-event-cb socket)
        (cond ((and stream (not (streamish-drain-read-buffer socket)))
               (stream-append-foreign stream pointer length)
               (when cb (funcall cb socket stream)))
              (cb (funcall cb socket
                           (if (eq (socket-read-buffer socket) :reuse)
                               (reused-read-vector pointer length)
                               (cl-async-ffi:foreign-octets pointer length)))))))))

(defmethod object-written ((socket socket))
  (let ((cb (socket-write-cb socket)))
    (when cb
      (catch-app-errors (socket-event-cb socket)
        (funcall cb socket)))))

(defun graceful-close-code-p (code)
  "Errors after which queued data still goes out: EOF (the peer may still
read) and TLS failures (the alert should reach the peer)."
  (member code (list cl-async-ffi:+eof+ cl-async-ffi:+etls+
                     cl-async-ffi:+everify+ cl-async-ffi:+etruncated+)))

(defun deliver-socket-event (socket condition)
  "Hands CONDITION to SOCKET's event-cb on the next pass of the loop."
  (let ((cb (socket-event-cb socket)))
    (when cb
      (delay (lambda () (run-event-cb cb condition))))))

(defmethod object-error ((socket socket) code)
  (let* ((ptr (streamish-c socket))
         (condition (socket-error-condition
                     socket code (and ptr (cl-async-ffi:tcp-error-text ptr)))))
    (unless (streamish-closed socket)
      (setf (streamish-closed socket) t)
      (when ptr
        (cl-async-ffi:tcp-close ptr (not (graceful-close-code-p code))))
      (deliver-socket-event socket condition))))

(defmethod object-closed ((socket socket))
  (setf (streamish-closed socket) t
        (streamish-c socket) nil))

(defmethod object-loop-closed ((socket socket))
  (setf (streamish-closed socket) t
        (streamish-c socket) nil))

(defmethod object-closed ((server socket-server))
  (setf (socket-server-closed server) t
        (socket-server-c server) nil))

(defmethod object-loop-closed ((server socket-server))
  (object-closed server))

(defun accept-error-message (code)
  "The text of a SOCKET-ACCEPT-ERROR with CODE: what failed, what the
server does about it, and, out of descriptors, what to do."
  (format nil "accepting a connection failed: ~a; the server pauses ~
               accepting and retries~:[~; (raise the process's descriptor ~
               limit, ulimit -n, or close connections)~]"
          (cl-async-ffi:strerror code)
          (member (cl-async-ffi:err-name code) '("EMFILE" "ENFILE")
                  :test #'string=)))

(defmethod object-error ((server socket-server) code)
  (let ((cb (socket-server-event-cb server)))
    (when cb
      (catch-app-errors cb
        (run-event-cb cb (make-condition
                          'socket-accept-error
                          :code code :server server :listener server
                          :msg (accept-error-message code)))))))

(setf (documentation 'socket-c 'function)
      "The C connection of SOCKET (a foreign pointer); nil before it exists
and once it is closed."
      (documentation 'socket-data 'function)
      "Data of the application's attached to SOCKET (setf-able)."
      (documentation 'socket-host 'function)
      "The host SOCKET connected to (or the peer's address for an accepted
socket)."
      (documentation 'socket-port 'function)
      "The port of SOCKET's peer."
      (documentation 'socket-connected 'function)
      "True once SOCKET is connected (after the TLS handshake for an
ssl-socket)."
      (documentation 'socket-direction 'function)
      ":out for a connection we made, :in for an accepted one."
      (documentation 'socket-connect-cb 'function)
      "SOCKET's connect-cb."
      (documentation 'socket-event-cb 'function)
      "SOCKET's event-cb."
      (documentation 'socket-server-c 'function)
      "The C server of a SOCKET-SERVER (a foreign pointer)."
      (documentation 'socket-server-event-cb 'function)
      "The event-cb of a SOCKET-SERVER (accepted sockets inherit it).")
