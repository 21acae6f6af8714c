;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; client.lisp --- tcp-ssl-connect and the client context it uses.

(in-package #:cl-async-ssl)

;;;# The client's context

(defun client-context (&key ssl-ctx ssl-options (ciphers nil ciphers-p)
                         (verify *ssl-verify-default*)
                         ca-file ca-path certificate key (keytype :pem) password
                         alpn min-version max-version)
  (resolve-context
   ssl-ctx nil
   (lambda ()
     (let ((options (list :verify verify :ca-file (path-string ca-file)
                          :ca-path (path-string ca-path)
                          :ssl-options (option-bits ssl-options)
                          :min-version min-version :max-version max-version
                          :certificate (path-string certificate)
                          :key (path-string key) :keytype keytype
                          :password password :alpn alpn)))
       (when ciphers-p
         (setf options (list* :ciphers ciphers options)))
       (values (cached-client-context options) nil)))))

;;;# tcp-ssl-connect

(defun tcp-ssl-connect (host port read-cb &rest args)
  "Like TCP-CONNECT, but the connection runs TLS.  Returns an SSL-SOCKET
(or its async-io-stream with :stream t) at once; :data and writes made
before the handshake completes are held and sent, in order, right after
it.  The connect-cb runs once the handshake is complete and the server
verified.  Every keyword of TCP-CONNECT is accepted (:event-cb :data
:stream :connect-cb :write-cb :read-timeout :write-timeout
:dont-drain-read-buffer), plus:

  :ssl-ctx       an SSL-CONTEXT, or a foreign SSL_CTX* made elsewhere
                 (never freed by us; :ssl-options, :ciphers, :verify,
                 :ca-file, :ca-path and the certificate keywords are then
                 ignored).  Default: a context for the options below,
                 cached and shared by connections with the same options.
  :ssl-options   list of +ssl-op-...+ constants (OR'ed) or an integer.
  :ciphers       TLS 1.2 cipher list (default *ssl-default-ciphers*).
  :verify        verify the server's chain and name (default
                 *ssl-verify-default*, t).
  :ca-file :ca-path  extra trust anchors (a PEM file, a hashed directory).
  :hostname      the name for SNI and verification (default HOST; an IP
                 literal is checked against the certificate's IP SANs).
  :certificate :key :keytype :password  a client certificate.
  :alpn          list of protocols to offer (\"h2\" \"http/1.1\").
  :min-version :max-version  :tlsv1.2 or :tlsv1.3.
  :handshake-timeout  seconds (default *ssl-handshake-timeout*).
  :session       nil: never resume a session (default t: offer the last
                 session with this host, port and name).

Failures reach the event-cb: TCP-SSL-VERIFY-ERROR (certificate not
accepted), TCP-SSL-ERROR (handshake or protocol failure), TCP-SSL-TRUNCATED
(the server closed without close_notify), TCP-TIMEOUT, and the TCP ones."
  (multiple-value-bind (event-cb args) (split-event-cb args)
    (destructuring-bind (&key data stream connect-cb write-cb (read-timeout -1)
                              (write-timeout -1)
                              (dont-drain-read-buffer nil ddrb-p)
                              ssl-ctx ssl-options (ciphers nil ciphers-p)
                              (verify *ssl-verify-default*) ca-file ca-path
                              hostname certificate key (keytype :pem) password
                              alpn min-version max-version
                              (handshake-timeout *ssl-handshake-timeout*)
                              (session t)
                         &allow-other-keys)
        args
      (check-event-loop-running)
      (check-type host string)
      (multiple-value-bind (context owned)
          (apply #'client-context
                 :ssl-ctx ssl-ctx :ssl-options ssl-options :verify verify
                 :ca-file ca-file :ca-path ca-path :certificate certificate
                 :key key :keytype keytype :password password :alpn alpn
                 :min-version min-version :max-version max-version
                 (and ciphers-p (list :ciphers ciphers)))
        (let* ((socket/stream
                 (apply #'init-tcp-socket read-cb
                        :class 'ssl-socket :event-cb event-cb :stream stream
                        :connect-cb connect-cb :write-cb write-cb
                        :read-timeout read-timeout :write-timeout write-timeout
                        :data data
                        (and ddrb-p (list :dont-drain-read-buffer
                                          dont-drain-read-buffer))))
               (socket (if (typep socket/stream 'async-stream)
                           (stream-socket socket/stream)
                           socket/stream))
               (name (or hostname host)))
          (setf (ssl-socket-context socket) context
                (ssl-socket-owns-context socket) owned
                (ssl-socket-verify-name socket) name
                (ssl-socket-session-key socket)
                (and session (format nil "~a:~a:~a" host port name))
                (ssl-socket-handshake-timeout socket) handshake-timeout)
          (handler-bind ((error (lambda (e)
                                  (declare (ignore e))
                                  (release-socket-context socket))))
            (connect-tcp-socket socket/stream host port)))))))
