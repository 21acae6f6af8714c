;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; server.lisp --- tcp-ssl-server: its class, the generics of the core it
;;;; specialises, its context, SNI certificates, OCSP staples, certificate
;;;; rotation and session-ticket keys.

(in-package #:cl-async-ssl)

(defclass tcp-ssl-server (tcp-server)
  ((context :initform nil :accessor tcp-ssl-server-context)
   (owns-context :initform nil :accessor tcp-ssl-server-owns-context)
   (handshake-timeout :initform nil :accessor tcp-ssl-server-handshake-timeout)
   (sni-function :initform nil :accessor tcp-ssl-server-sni-function)
   (sni :initform nil :accessor tcp-ssl-server-sni
        :documentation "The :sni given (entries or a function), for reloads.")
   (ocsp-function :initform nil :accessor tcp-ssl-server-ocsp-function
                  :documentation "An :ocsp-response function of the socket.")
   (verify-callback :initform nil :accessor tcp-ssl-server-verify-callback)
   (settings :initform nil :accessor tcp-ssl-server-settings
             :documentation "The context keywords other than the
credentials, for reloads.")
   (ticket-keys :initform nil :accessor tcp-ssl-server-explicit-ticket-keys))
  (:documentation "A TLS server, returned by TCP-SSL-SERVER.  Close it with
CLOSE-TCP-SERVER (which also frees the context it made)."))

;;;# The generics of the core a TLS server specialises

(defmethod server-socket-class ((server tcp-ssl-server))
  'ssl-socket)

(defmethod accept-connects-p ((server tcp-ssl-server))
  nil)

(defun set-server-context (server context)
  "Makes new handshakes of SERVER use CONTEXT."
  (let ((rc (cl-async-ffi:server-set-tls
             (socket-server-c server) (ssl-context-c context)
             (timeout-ms (tcp-ssl-server-handshake-timeout server)))))
    (unless (zerop rc)
      (ssl-error rc (format nil "cannot set up TLS on the server: ~a"
                            (cl-async-ffi:strerror rc))))))

(defmethod server-attached ((server tcp-ssl-server))
  (set-server-context server (tcp-ssl-server-context server)))

(defmethod socket-accepted ((server tcp-ssl-server) (socket ssl-socket))
  (setf (ssl-socket-server-side socket) t
        (ssl-socket-context socket) (tcp-ssl-server-context server)
        (ssl-socket-sni-function socket) (tcp-ssl-server-sni-function server)
        (ssl-socket-ocsp-function socket) (tcp-ssl-server-ocsp-function server)
        (ssl-socket-verify-callback socket)
        (or (tcp-ssl-server-verify-callback server)
            (ssl-context-verify-callback (tcp-ssl-server-context server)))))

(defmethod object-sni ((socket ssl-socket) name)
  ;; The ClientHello arrived (the handshake waits for this answer): the
  ;; connection's OCSP staple, then its context by name.
  (let ((fn (ssl-socket-sni-function socket))
        (ocsp (ssl-socket-ocsp-function socket))
        (choice nil))
    (unwind-protect
         (catch-app-errors (socket-event-cb socket)
           (when ocsp
             (let ((der (funcall ocsp socket))
                   (tls (tls-of socket)))
               (when tls
                 (cl-async-ffi:tls-set-ocsp-response
                  tls (and der (ocsp-response-octets 'tcp-ssl-server der))))))
           (when fn
             (setf choice (funcall fn name))))
      (let ((c (socket-c socket)))
        (when (and c (not (socket-closed-p socket)))
          (cl-async-ffi:tcp-sni-select
           c (if (and (typep choice 'ssl-context) (not (ssl-context-freed choice)))
                 (ssl-context-c choice)
                 (cl-async-ffi:null-pointer))))))))

(defmethod close-socket-server :after ((server tcp-ssl-server))
  (release-server-context server))

(defmethod object-closed :after ((server tcp-ssl-server))
  (release-server-context server))

(defmethod object-loop-closed :after ((server tcp-ssl-server))
  (release-server-context server))

;;;# The server's contexts

(defparameter *server-keywords*
  (append '(:ssl-ctx :sni :handshake-timeout)
          (remove-if (lambda (k) (member k (cons :server *client-only-keywords*)))
                     *context-keywords*))
  "The TLS keywords of a server (TCP-SSL-SERVER, START-TLS with :server t).")

(defparameter *credential-keywords* '(:certificate :key :pfx)
  "What RELOAD-SSL-SERVER replaces.")

(defun release-server-context (server)
  (when (tcp-ssl-server-owns-context server)
    (setf (tcp-ssl-server-owns-context server) nil)
    (free-ssl-context (tcp-ssl-server-context server))))

(defun server-settings (args)
  "The context keywords of ARGS other than the credentials and an
:ocsp-response function."
  (let ((settings (context-options args (remove :server *context-keywords*))))
    (dolist (k *credential-keywords*) (remf settings k))
    (when (functionp (getf settings :ocsp-response))
      (remf settings :ocsp-response))
    settings))

(defun sni-ask-mode (sni ocsp-response)
  "How the C side asks about ClientHellos: 2 (always) for an OCSP function,
1 (unmatched names) for an SNI function, else 0."
  (cond ((functionp ocsp-response) 2)
        ((or (functionp sni) (and sni (symbolp sni))) 1)
        (t 0)))

(defun new-server-context (function settings credentials sni mode)
  "A server SSL-CONTEXT with SETTINGS and CREDENTIALS (keyword plists), its
SNI entries and ask MODE."
  (when (and (null (getf credentials :certificate)) (null (getf credentials :pfx)))
    (argument-error function :certificate
                    "a TLS server needs :certificate (a PEM chain: file name ~
                     or octets) and :key, or :pfx, or :ssl-ctx with a context ~
                     that has them."))
  (let ((context (build-context function (append (list :server t) credentials
                                                 settings)
                                t (getf settings :verify-callback))))
    (handler-bind ((error (lambda (e)
                            (declare (ignore e))
                            (free-ssl-context context))))
      (add-sni-entries function context sni settings)
      (unless (zerop mode)
        (check-ctx-call (ssl-context-c context)
                        (cl-async-ffi:tls-ctx-set-sni-ask (ssl-context-c context)
                                                          mode)
                        "cannot ask about names")))
    context))

(defun server-context (function args)
  "The server's SSL-CONTEXT for the keywords ARGS, and whether the server
owns it."
  (let ((ssl-ctx (getf args :ssl-ctx)))
    (resolve-context
     ssl-ctx t
     (lambda ()
       (values (new-server-context
                function (server-settings args)
                (context-options args *credential-keywords*)
                (getf args :sni)
                (sni-ask-mode (getf args :sni) (getf args :ocsp-response)))
               t)))))

(defun add-sni-entries (function context sni settings)
  "Sets up :sni on CONTEXT: a list of (hostname certificate key [password])
entries, each a child context with SETTINGS, or a function asked for each
name (see TCP-SSL-SERVER)."
  (cond ((null sni))
        ((or (functionp sni) (and (symbolp sni) (fboundp sni))))
        ((listp sni)
         (dolist (entry sni)
           (unless (and (consp entry) (stringp (first entry)) (second entry))
             (argument-error function :sni "entry ~s: give (hostname ~
                                            certificate key [password])." entry))
           (destructuring-bind (name certificate &optional key password) entry
             (let ((child (build-context
                           function
                           (append (list :server t :certificate certificate)
                                   (and key (list :key key))
                                   (and password (list :password password))
                                   (let ((s (copy-list settings)))
                                     (remf s :password) (remf s :ticket-keys)
                                     (remf s :ocsp-response) s))
                           t nil)))
               (push child (ssl-context-sni-contexts context))
               (check-ctx-call (ssl-context-c context)
                               (cl-async-ffi:tls-ctx-add-sni (ssl-context-c context)
                                                             name (ssl-context-c child))
                               (format nil "cannot add the :sni entry ~s" name))))))
        (t (argument-error function :sni "~s: give a list of (hostname ~
                                          certificate key) entries or a ~
                                          function of the requested name." sni))))

;;;# tcp-ssl-server

(defparameter *listen-keywords* '(:event-cb :connect-cb :backlog :stream :fd :reuse-port
                                  :read-buffer)
  "The keywords TCP-SERVER takes, which TCP-SSL-SERVER takes too.")

(defun tcp-ssl-server (bind-address port read-cb &rest args)
  "Like TCP-SERVER, but every accepted connection runs TLS (an SSL-SOCKET);
its connect-cb runs once the handshake is complete.  Every keyword of
TCP-SERVER is accepted (:event-cb :connect-cb :backlog :stream :fd
:reuse-port :read-buffer), plus
those of MAKE-SSL-CONTEXT (files may be given as octets), in short:

  :certificate   PEM chain (leaf first, then intermediates, like nginx),
                 file name or octets; it may also hold the key.  A list of
                 them (with a list of keys) serves an RSA and an ECDSA
                 certificate, each client getting the kind it supports.
  :key           private key (default: the certificate's file).
  :keytype       :pem (default) or :asn1.
  :password      passphrase of an encrypted key or :pfx.
  :pfx           a PKCS#12 file or its octets instead of :certificate/:key.
  :ssl-ctx       an SSL-CONTEXT, or a foreign SSL_CTX* made elsewhere (never
                 freed by us; the context keywords are then ignored).
  :ssl-options   list of +ssl-op-...+ constants (OR'ed) or an integer.
  :ciphers       TLS 1.2 cipher list (default *ssl-default-ciphers*).
  :verify-client nil (default), :optional or :require a client certificate,
                 checked against :ca-file / :ca-path, :crl-file (:crl-check
                 :leaf or :chain), :pin-sha256 and :verify-callback.
  :alpn          protocols in order of preference; a client offering none
                 of them is served without ALPN.
  :sni           other certificates by requested name: a list of
                 (hostname certificate key [password]) entries (hostname
                 may be \"*.example.com\"), or a function of the requested
                 name (a string, or nil) returning an SSL-CONTEXT made with
                 :server t (kept alive by the caller), or nil for the
                 default certificate.
  :ocsp-response the OCSP response to staple to clients that ask: DER
                 octets, a file name, or a function of the socket (called
                 for each ClientHello) returning octets or nil.
  :ticket-keys   session-ticket keys shared with other servers (see
                 MAKE-SSL-CONTEXT); rotate them with (setf
                 tcp-ssl-server-ticket-keys).
  :min-version :max-version  :tlsv1.2 or :tlsv1.3.
  :handshake-timeout  seconds (default *ssl-handshake-timeout*).

Signals TCP-SSL-ERROR if the certificate or key cannot be loaded or do not
match, SOCKET-ADDRESS-IN-USE if the port is taken, and ARGUMENT-ERROR for
an unknown keyword or a value of the wrong kind.  Handshake failures reach
the event-cb as TCP-SSL-ERROR (TCP-SSL-HANDSHAKE-EOF when the client hung
up), and the connection is closed.  RELOAD-SSL-SERVER replaces the
certificate while it runs."
  (multiple-value-bind (event-cb args) (split-event-cb args)
    (check-keywords 'tcp-ssl-server args (append *listen-keywords* *server-keywords*))
    (check-event-loop-running)
    (destructuring-bind (&key connect-cb backlog stream fd reuse-port read-buffer
                              sni ocsp-response
                              verify-callback
                              (handshake-timeout *ssl-handshake-timeout*)
                         &allow-other-keys)
        args
      (multiple-value-bind (context owned) (server-context 'tcp-ssl-server args)
        (let ((ok nil))
          (unwind-protect
               (let ((server (make-server 'tcp-ssl-server bind-address port read-cb
                                          :event-cb event-cb :connect-cb connect-cb
                                          :backlog backlog :stream stream :fd fd
                                          :reuse-port reuse-port
                                          :read-buffer read-buffer
                                          :function 'tcp-ssl-server
                                          :before-listen
                                          (lambda (server)
                                            (setf (tcp-ssl-server-context server) context
                                                  (tcp-ssl-server-owns-context server) owned
                                                  (tcp-ssl-server-handshake-timeout server)
                                                  handshake-timeout
                                                  (tcp-ssl-server-sni server) sni
                                                  (tcp-ssl-server-sni-function server)
                                                  (and sni (not (listp sni)) sni)
                                                  (tcp-ssl-server-ocsp-function server)
                                                  (and (functionp ocsp-response)
                                                       ocsp-response)
                                                  (tcp-ssl-server-verify-callback server)
                                                  verify-callback
                                                  (tcp-ssl-server-settings server)
                                                  (server-settings args)
                                                  (tcp-ssl-server-explicit-ticket-keys server)
                                                  (let ((k (getf args :ticket-keys)))
                                                    (and k (ticket-key-list
                                                            'tcp-ssl-server k))))))))
                 (setf ok t)
                 server)
            (unless ok
              (when owned (free-ssl-context context)))))))))

;;;# Rotation

(defun reload-ssl-server (server &rest args &key certificate key keytype password
                                              pfx ssl-ctx (sni nil sni-p)
                          &allow-other-keys)
  "Makes SERVER's new handshakes use new credentials at once: CERTIFICATE
and KEY (file names or octets, or lists of them, as TCP-SSL-SERVER takes),
or PFX (with PASSWORD), or SSL-CTX (an SSL-CONTEXT or SSL_CTX*).  KEYTYPE
and PASSWORD default to the server's.  SNI replaces the server's :sni;
without it the :sni entries are loaded again from their files.  Every
other setting stays, and so do the session-ticket keys (sessions resume
across the reload).  Connections already open keep their certificate.

A file that cannot be loaded, or a key that does not match, signals a
TCP-SSL-ERROR and the old credentials keep serving.  Returns SERVER."
  (declare (ignore certificate key keytype password pfx))
  (check-keywords 'reload-ssl-server args
                  '(:certificate :key :keytype :password :pfx :ssl-ctx :sni))
  (check-type server tcp-ssl-server)
  (when (socket-server-closed server)
    (error 'socket-closed :socket server :code -1
                          :msg "reload-ssl-server: the server is closed"))
  (let* ((old (tcp-ssl-server-context server))
         (sni (if sni-p sni (tcp-ssl-server-sni server)))
         (settings (let ((s (copy-list (tcp-ssl-server-settings server))))
                     (dolist (k '(:keytype :password))
                       (when (member k args)
                         (setf (getf s k) (getf args k))))
                     s)))
    (multiple-value-bind (new owned)
        (resolve-context
         ssl-ctx t
         (lambda ()
           (values (new-server-context
                    'reload-ssl-server settings
                    (context-options args *credential-keywords*) sni
                    (sni-ask-mode sni (tcp-ssl-server-ocsp-function server)))
                   t)))
      (handler-bind ((error (lambda (e)
                              (declare (ignore e))
                              (when owned (free-ssl-context new)))))
        (cl-async-ffi:tls-ctx-copy-ticket-keys (ssl-context-c new) (ssl-context-c old))
        (set-server-context server new))
      (release-server-context server)
      (setf (tcp-ssl-server-context server) new
            (tcp-ssl-server-owns-context server) owned
            (tcp-ssl-server-sni server) sni
            (tcp-ssl-server-sni-function server) (and sni (not (listp sni)) sni))
      server)))

;;;# Session-ticket keys

(defun tcp-ssl-server-ticket-keys (server)
  "The session-ticket keys SERVER was given (a list of 80-byte octet
vectors, the first issuing tickets), or nil when it uses keys of its own
(random, replaced every *ssl-ticket-key-lifetime*).  SETF rotates them
live: tickets of the keys in the new list are still accepted, others are
not (those clients make a full handshake); setting nil goes back to keys
of its own."
  (mapcar #'copy-seq (tcp-ssl-server-explicit-ticket-keys server)))

(defun (setf tcp-ssl-server-ticket-keys) (keys server)
  (check-type server tcp-ssl-server)
  (let ((list (and keys (ticket-key-list '(setf tcp-ssl-server-ticket-keys) keys))))
    (check-ctx-call (ssl-context-c (tcp-ssl-server-context server))
                    (cl-async-ffi:tls-ctx-set-ticket-keys
                     (ssl-context-c (tcp-ssl-server-context server)) list)
                    "the ticket keys were rejected")
    (setf (tcp-ssl-server-explicit-ticket-keys server) list)
    keys))
