;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; conditions.lisp --- the conditions of the TCP core.
;;;;
;;;; Event-cbs receive these as values (nothing is signalled); functions
;;;; that fail synchronously signal them.  The tcp-* names and
;;;; SOCKET-CLOSED are true aliases: a handler for either name matches.

(in-package #:cl-async)

(defgeneric streamish (object)
  (:documentation "The streamish (socket) of a condition or an async
stream."))

(defgeneric socket (object)
  (:documentation "The socket of a condition or an async stream."))

(define-condition streamish-info (event-info)
  ((streamish :initarg :streamish :initarg :socket :initform nil
              :accessor streamish-info-streamish))
  (:report (lambda (c s)
             (format s "~a on ~a" (type-of c) (streamish c))))
  (:documentation "An event on a streamish (a socket)."))

(defmethod streamish ((c streamish-info)) (streamish-info-streamish c))
(defmethod socket ((c streamish-info)) (streamish-info-streamish c))

(defgeneric tcp-socket (condition)
  (:documentation "Compatibility accessor: the socket of an event."))
(defmethod tcp-socket ((c streamish-info)) (streamish-info-streamish c))

(defun report-streamish-error (c s)
  (format s "~a~@[ (code ~a)~]: ~a~@[ [~a]~]"
          (type-of c)
          (let ((code (event-errcode c))) (and (integerp code) (/= 0 code) code))
          (or (event-errmsg c) "no details")
          (streamish c)))

(define-condition streamish-error (event-error streamish-info)
  ()
  (:report report-streamish-error)
  (:documentation "An error on a streamish."))

(define-condition streamish-eof (streamish-info)
  ()
  (:documentation "The peer ended the stream."))

(define-condition streamish-enoent (streamish-error) ()
  (:report report-streamish-error)
  (:documentation "No such file or directory."))

(define-condition pipe-not-found (streamish-enoent) ()
  (:report report-streamish-error)
  (:documentation "Nothing is at the path a pipe connects to.  It is a
STREAMISH-ENOENT (what upstream signals), so handlers for either name
match."))

(define-condition streamish-closed (streamish-error) ()
  (:report report-streamish-error)
  (:documentation "An operation on a closed streamish (socket).  Open a new
connection to go on."))

(define-condition streamish-broken-pipe (streamish-error) ()
  (:report report-streamish-error)
  (:documentation "The peer went away while data was being written
(EPIPE)."))

(define-condition streamish-canceled (streamish-error) ()
  (:report report-streamish-error)
  (:documentation "An operation was cancelled because its socket closed."))

(define-condition socket-info (streamish-info)
  ()
  (:documentation "An event on a socket."))

(define-condition socket-error (streamish-error socket-info)
  ()
  (:report report-streamish-error)
  (:documentation "An error on a socket."))

(define-condition socket-eof (streamish-eof socket-error)
  ()
  (:report report-streamish-error)
  (:documentation "The peer closed the connection (end of file).  Writes
queued before it arrived are still delivered, then the socket closes."))

(define-condition socket-reset (socket-error) ()
  (:report report-streamish-error)
  (:documentation "The peer reset the connection."))

(define-condition socket-timeout (socket-error) ()
  (:report report-streamish-error)
  (:documentation "A connect, read, write or handshake timeout expired."))

(define-condition socket-refused (socket-error) ()
  (:report report-streamish-error)
  (:documentation "The connection was refused: nothing listens there."))

(define-condition socket-aborted (socket-error) ()
  (:report report-streamish-error)
  (:documentation "The connection was aborted."))

(define-condition tcp-server-bind-error (socket-error)
  ((addr :initarg :addr :initform nil :reader tcp-server-bind-error-addr)
   (port :initarg :port :initform nil :reader tcp-server-bind-error-port))
  (:report report-streamish-error)
  (:documentation "A server could not bind or listen to its address."))

(define-condition socket-address-in-use (tcp-server-bind-error) ()
  (:report report-streamish-error)
  (:documentation "The address and port are already in use: pick another
port (or 0 for any free one), or close the other server."))

(define-condition socket-accept-error (socket-error)
  ((listener :initarg :listener :initform nil
             :accessor socket-accept-error-listener)
   (server :initarg :server :initform nil
           :accessor socket-accept-error-server))
  (:report report-streamish-error)
  (:documentation "A server failed to accept a connection (for example, out
of file descriptors: EVENT-ERRCODE is then EMFILE's -24).  Passed to the
server's event-cb, never signalled.  The server stays open: it stops
accepting, tries again after a pause (10 ms, doubling up to 0.5 s while
accepting keeps failing), and meanwhile the clients wait in the listen
backlog; while the failure lasts this is reported at most once a
second."))

(defun socket-accept-error-tcp-server (condition)
  "The server of a SOCKET-ACCEPT-ERROR."
  (socket-accept-error-server condition))

(define-condition dns-error (event-error) ()
  (:documentation "A DNS lookup failed."))

;;; True aliases: the same class under both names.
(define-condition-alias socket-closed streamish-closed)
(define-condition-alias tcp-info socket-info)
(define-condition-alias tcp-error socket-error)
(define-condition-alias tcp-eof socket-eof)
(define-condition-alias tcp-reset socket-reset)
(define-condition-alias tcp-timeout socket-timeout)
(define-condition-alias tcp-refused socket-refused)
(define-condition-alias tcp-accept-error socket-accept-error)

(define-condition event-freed (event-error)
  ((event :initarg :event :initform nil :accessor event-freed-event))
  (:default-initargs :msg "Freed event being operated on")
  (:documentation "A timer event was used after FREE-EVENT."))

(define-condition notifier-freed (event-error)
  ((notifier :initarg :notifier :initform nil
             :accessor notifier-freed-notifier))
  (:default-initargs :msg "Freed notifier being operated on")
  (:documentation "A notifier was used after FREE-NOTIFIER (or after its
single shot)."))

(setf (documentation 'socket-accept-error-listener 'function)
      "The server of a SOCKET-ACCEPT-ERROR (upstream's name)."
      (documentation 'socket-accept-error-server 'function)
      "The server of a SOCKET-ACCEPT-ERROR.")
