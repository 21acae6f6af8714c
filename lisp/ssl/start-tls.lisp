;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; start-tls.lisp --- STARTTLS: upgrading a connected plain TCP socket to
;;;; TLS in place.

(in-package #:cl-async-ssl)

;;;# STARTTLS

(defclass ssl-pipe (ssl-socket pipe)
  ()
  (:documentation "A pipe (unix domain socket) that START-TLS upgraded: an
SSL-SOCKET that is still a PIPE."))

(defun start-tls (socket &rest args &key server connect-cb (hostname nil hostname-p)
                                      (handshake-timeout *ssl-handshake-timeout*)
                                      (session t) &allow-other-keys)
  "Upgrades SOCKET (or the socket of an async stream), a connected plain TCP
socket or pipe, to TLS in place (STARTTLS), keeping its read-cb, write-cb
and event-cb; it becomes an SSL-SOCKET (a pipe stays a PIPE too).  Over a
pipe, a client has no host name to verify: give :hostname (the name the
server's certificate was issued for).  With :SERVER t it takes the server
side and the keywords of TCP-SSL-SERVER (:certificate, :key, :ssl-ctx,
:verify-client, ...); otherwise the client side and those of
TCP-SSL-CONNECT (:ca-file, :verify, :hostname, :alpn, ...).  :CONNECT-CB,
if given, runs once the handshake is complete.

Data written before the call goes out first as plaintext (write the
protocol's \"go ahead\" reply, then call START-TLS); data received and
not yet handed to the read-cb is fed to TLS.  Writes made after the call
are held until the handshake completes.  An unknown keyword signals an
ARGUMENT-ERROR.  Returns SOCKET."
  (check-keywords 'start-tls args
                  (append '(:server :connect-cb)
                          (if server *server-keywords* *client-keywords*)))
  (let ((socket (if (typep socket 'async-stream) (stream-socket socket) socket)))
    (check-type socket (or tcp-socket pipe))
    (when (typep socket 'ssl-socket)
      (error "start-tls: ~a already runs TLS." socket))
    (when (or (socket-closed-p socket) (null (socket-c socket)))
      (error 'socket-closed :socket socket :code -1
                            :msg "start-tls: the socket is closed"))
    (unless (socket-connected socket)
      (error "start-tls: ~a is not connected yet; call it from the connect-cb ~
              or later, or use tcp-ssl-connect." socket))
    (let* ((name (if hostname-p hostname (socket-host socket)))
           (session-key (and (not server) name
                             (session-key 'start-tls session (socket-label socket)
                                          name))))
      (multiple-value-bind (context owned)
          (if server
              (server-context 'start-tls args)
              (client-context 'start-tls args))
        (change-class socket (if (typep socket 'pipe) 'ssl-pipe 'ssl-socket))
        (setf (ssl-socket-context socket) context
              (ssl-socket-owns-context socket) owned
              (ssl-socket-server-side socket) (and server t)
              (ssl-socket-verify-name socket) (and (not server) name)
              (ssl-socket-session-key socket) session-key
              (ssl-socket-handshake-timeout socket) handshake-timeout
              (ssl-socket-verify-callback socket) (socket-verify-callback context args)
              (socket-connect-cb socket) connect-cb)
        (handler-bind ((error (lambda (e)
                                (declare (ignore e))
                                (release-socket-context socket))))
          (socket-attached socket))
        socket))))
