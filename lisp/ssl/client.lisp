;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; client.lisp --- tcp-ssl-connect and the client context it uses.

(in-package #:cl-async-ssl)

;;;# The client's context

(defparameter *connect-keywords*
  '(:event-cb :data :stream :connect-cb :write-cb :read-timeout
    :write-timeout :dont-drain-read-buffer :read-buffer)
  "The keywords TCP-CONNECT takes, which TCP-SSL-CONNECT takes too.")

(defparameter *client-keywords*
  (append '(:ssl-ctx :hostname :handshake-timeout :session)
          (remove-if (lambda (k) (member k (cons :server *server-only-keywords*)))
                     *context-keywords*))
  "The TLS keywords of a client connection (TCP-SSL-CONNECT, START-TLS).")

(defun context-options (args keywords)
  "The keywords of ARGS (a plist) that are among KEYWORDS, in the order of
KEYWORDS, file names made absolute: the options of a context, comparable
with EQUAL for the cache."
  (loop :for k :in keywords
        :for cell := (member k args)
        :when cell
          :append (list k (let ((v (second cell)))
                            (if (and (member k '(:certificate :key :ca-file :ca-path
                                                 :pfx :crl-file))
                                     (file-name-p v))
                                (path-string v)
                                v)))))

(defun client-context (function args)
  "The SSL-CONTEXT for a client connection with the keywords ARGS (a
plist: :ssl-ctx, or the context keywords), and whether the caller owns it."
  (let ((ssl-ctx (getf args :ssl-ctx)))
    (resolve-context
     ssl-ctx nil
     (lambda ()
       (let ((options (context-options args (remove :server *context-keywords*))))
         (when (member :ssl-options options)
           (setf (getf options :ssl-options)
                 (option-bits function (getf options :ssl-options))))
         (unless (member :verify options)
           (setf options (list* :verify *ssl-verify-default* options)))
         (values (cached-client-context options) nil))))))

(defun socket-verify-callback (context args)
  "The :verify-callback of a connection: its own, or its context's."
  (or (getf args :verify-callback)
      (and (typep context 'ssl-context) (ssl-context-verify-callback context))))

(defun session-key (function session label name)
  "The key sessions of this connection are saved and offered under (LABEL:
\"host:port\" of the connection)."
  (cond ((null session) nil)
        ((eq session t) (format nil "~a:~a" label name))
        ((stringp session) session)
        (t (argument-error function :session
                           "~s: give t (resume sessions with this host, port ~
                            and name), nil, or a string: connections with the ~
                            same string share their sessions (servers behind ~
                            one name, with the same :ticket-keys)." session))))

(defun check-host (function host)
  (unless (and (stringp host) (plusp (length host)))
    (argument-error function 'host "the host ~s is not a name or address: ~
                                    give a string such as \"example.com\" or ~
                                    \"127.0.0.1\"." host)))

;;;# tcp-ssl-connect

(defun tcp-ssl-connect (host port read-cb &rest args)
  "Like TCP-CONNECT, but the connection runs TLS.  Returns an SSL-SOCKET
(or its async-io-stream with :stream t) at once; :data and writes made
before the handshake completes are held and sent, in order, right after
it.  The connect-cb runs once the handshake is complete and the server
verified.  Every keyword of TCP-CONNECT is accepted (:event-cb :data
:stream :connect-cb :write-cb :read-timeout :write-timeout
:dont-drain-read-buffer :read-buffer), plus:

  :ssl-ctx       an SSL-CONTEXT, or a foreign SSL_CTX* made elsewhere
                 (never freed by us; the context keywords below are then
                 ignored).  Default: a context for the options below,
                 cached and shared by connections with the same options.
  :ssl-options   list of +ssl-op-...+ constants (OR'ed) or an integer.
  :ciphers       TLS 1.2 cipher list (default *ssl-default-ciphers*).
  :verify        verify the server's chain and name (default
                 *ssl-verify-default*, t).
  :ca-file :ca-path  extra trust anchors (a PEM file or its octets; a
                 hashed directory).
  :hostname      the name for SNI and verification (default HOST; an IP
                 literal is checked against the certificate's IP SANs).
  :certificate :key :keytype :password :pfx  a client certificate (file
                 names or octets; see MAKE-SSL-CONTEXT).
  :crl-file :crl-check  CRLs the server's chain is checked against.
  :pin-sha256    base64 SHA-256 digests of public keys; a certificate of
                 the server's verified chain must have one.
  :verify-callback  (lambda (socket chain)) that accepts the verified
                 server (true) or not (nil, or an error); see
                 MAKE-SSL-CONTEXT.
  :ocsp          nil (default), t (ask for a stapled OCSP response; one that
                 comes must be valid and not revoked) or :require.
  :alpn          list of protocols to offer (\"h2\" \"http/1.1\").
  :min-version :max-version  :tlsv1.2 or :tlsv1.3.
  :handshake-timeout  seconds (default *ssl-handshake-timeout*).
  :session       t (default): offer the last session with this host, port
                 and name; nil: never resume; a string: share sessions
                 with every connection given the same string.

Failures reach the event-cb: TCP-SSL-VERIFY-ERROR (certificate not
accepted), TCP-SSL-HANDSHAKE-EOF (the server closed during the handshake),
TCP-SSL-ERROR (handshake or protocol failure), TCP-SSL-TRUNCATED (the
server closed without close_notify), TCP-TIMEOUT, and the TCP ones.  An
unknown keyword or a value of the wrong kind signals an ARGUMENT-ERROR."
  (multiple-value-bind (event-cb args) (split-event-cb args)
    (check-keywords 'tcp-ssl-connect args
                    (append *connect-keywords* *client-keywords*))
    (check-event-loop-running)
    (check-host 'tcp-ssl-connect host)
    (destructuring-bind (&key data stream connect-cb write-cb (read-timeout -1)
                              (write-timeout -1)
                              (dont-drain-read-buffer nil ddrb-p)
                              read-buffer
                              hostname
                              (handshake-timeout *ssl-handshake-timeout*)
                              (session t)
                         &allow-other-keys)
        args
      (when (and hostname (not (stringp hostname)))
        (argument-error 'tcp-ssl-connect :hostname "~s: give the server's name ~
                                                    as a string." hostname))
      (let ((name (or hostname host))
            (session-key (session-key 'tcp-ssl-connect session
                                      (format nil "~a:~a" host port)
                                      (or hostname host))))
        (multiple-value-bind (context owned) (client-context 'tcp-ssl-connect args)
          (let* ((socket/stream
                   (handler-bind ((error (lambda (e)
                                           (declare (ignore e))
                                           (when owned (free-ssl-context context)))))
                     (apply #'init-tcp-socket read-cb
                            :class 'ssl-socket :event-cb event-cb :stream stream
                            :connect-cb connect-cb :write-cb write-cb
                            :read-timeout read-timeout :write-timeout write-timeout
                            :data data :read-buffer read-buffer
                            :function 'tcp-ssl-connect
                            (and ddrb-p (list :dont-drain-read-buffer
                                              dont-drain-read-buffer)))))
                 (socket (if (typep socket/stream 'async-stream)
                             (stream-socket socket/stream)
                             socket/stream)))
            (setf (ssl-socket-context socket) context
                  (ssl-socket-owns-context socket) owned
                  (ssl-socket-verify-name socket) name
                  (ssl-socket-session-key socket) session-key
                  (ssl-socket-handshake-timeout socket) handshake-timeout
                  (ssl-socket-verify-callback socket)
                  (socket-verify-callback context args))
            (handler-bind ((error (lambda (e)
                                    (declare (ignore e))
                                    (release-socket-context socket))))
              (connect-tcp-socket socket/stream host port))))))))
