;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; context.lisp --- TLS contexts: making and configuring them, adopting a
;;;; foreign SSL_CTX, the cache of client contexts, and choosing the context
;;;; of a connection.

(in-package #:cl-async-ssl)

;;;# Contexts

(defclass ssl-context ()
  ((pointer :initarg :pointer :accessor ssl-context-c
            :documentation "The casl_tls_ctx (one reference owned).")
   (server :initarg :server :reader ssl-context-server-p)
   (sni-contexts :initform nil :accessor ssl-context-sni-contexts
                 :documentation "Contexts made for :sni entries (freed
with this one).")
   (verify-callback :initarg :verify-callback :initform nil
                    :accessor ssl-context-verify-callback
                    :documentation "The :verify-callback of connections on
this context.")
   (freed :initform nil :accessor ssl-context-freed))
  (:documentation "A reusable TLS configuration (an SSL_CTX), made by
MAKE-SSL-CONTEXT.  Pass it as :ssl-ctx to any number of TCP-SSL-CONNECT or
TCP-SSL-SERVER calls; free it with FREE-SSL-CONTEXT when done (connections
using it keep it alive until they close)."))

(defmethod print-object ((c ssl-context) s)
  (print-unreadable-object (c s :type t :identity t)
    (format s "~:[client~;server~]~:[~; freed~]"
            (ssl-context-server-p c) (ssl-context-freed c))))

(defun ssl-context-pointer (context)
  "The OpenSSL SSL_CTX* of CONTEXT (a foreign pointer), for settings this
library does not expose.  Valid until FREE-SSL-CONTEXT."
  (when (ssl-context-freed context)
    (error "ssl-context-pointer: ~a was freed." context))
  (cl-async-ffi:tls-ctx-ssl-ctx (ssl-context-c context)))

(defun free-ssl-context (context)
  "Releases CONTEXT.  Connections still using it keep it until they close.
Freeing twice does nothing."
  (unless (ssl-context-freed context)
    (setf (ssl-context-freed context) t)
    (mapc #'free-ssl-context (ssl-context-sni-contexts context))
    (cl-async-ffi:tls-ctx-unref (ssl-context-c context)))
  nil)

(defun new-context-pointer (server)
  (multiple-value-bind (ctx code) (cl-async-ffi:tls-ctx-new server)
    (unless ctx
      (ssl-error code (format nil "cannot create a TLS context: ~a"
                              (cl-async-ffi:strerror code))))
    ctx))

(defun make-ssl-context (&rest args &key server certificate key (keytype :pem)
                                      password pfx ca-file ca-path (verify t)
                                      verify-client ciphers ssl-options
                                      min-version max-version alpn crl-file
                                      crl-check pin-sha256 verify-callback ocsp
                                      ocsp-response ticket-keys
                         &allow-other-keys)
  "A reusable TLS configuration (see SSL-CONTEXT).  Secure defaults: TLS 1.2
minimum, no renegotiation, no compression, session tickets.

  :server         t for a server context (default: client).
  :certificate    PEM chain (leaf first, then intermediates): a file name
                  (string or pathname) or octets holding it; needed by
                  servers (or :pfx), optional for clients (a client
                  certificate).  A list of them serves several kinds of key
                  from one server (an RSA and an ECDSA certificate, chosen
                  per client).
  :key            the private key (file name or octets; a list, one per
                  certificate; default: the key in the certificate's file).
  :keytype        :pem (default) or :asn1 (DER).
  :password       passphrase of an encrypted key or of a :pfx.
  :pfx            a PKCS#12 (.p12/.pfx) file name or its octets, instead of
                  :certificate and :key.
  :ca-file :ca-path  trust anchors (a PEM file or its octets; a hashed
                  directory), added to the system trust store for clients.
  :verify         clients: verify the server's chain (default t).
  :verify-client  servers: nil (default), :optional or :require a client
                  certificate, verified against :ca-file/:ca-path.
  :crl-file       PEM CRLs (file name or octets) checked during verification.
  :crl-check      :leaf (default with :crl-file: the peer's certificate) or
                  :chain (every certificate; each CA then needs its CRL).
  :pin-sha256     list of base64 SHA-256 digests of SubjectPublicKeyInfo
                  (\"sha256//...\" or bare): a certificate of the verified
                  chain must match one.
  :verify-callback  (lambda (socket chain)) run after OpenSSL verified the
                  peer, before the connect-cb (CHAIN: certificate plists,
                  leaf first); nil or an error fails the connection with a
                  TCP-SSL-VERIFY-ERROR.  Our data waits until it accepts.
  :ocsp           clients: nil (default), t (ask for a stapled OCSP response
                  and check it) or :require (a valid one is required).
  :ocsp-response  servers: the DER OCSP response to staple (octets or a
                  file name).
  :ticket-keys    servers: an 80-byte octet vector, or a list of them (the
                  first issues tickets, all are accepted), shared by servers
                  that resume each other's sessions.  Default: random keys
                  of this context, replaced every *ssl-ticket-key-lifetime*.
  :ciphers        TLS 1.2 cipher list (default *ssl-default-ciphers*).
  :ssl-options    list of +ssl-op-...+ constants (OR'ed) or an integer.
  :min-version :max-version  :tlsv1.2 or :tlsv1.3.
  :alpn           list of protocol names (clients: offered; servers: in
                  order of preference).

Signals TCP-SSL-ERROR if a file cannot be loaded or a setting is rejected,
and ARGUMENT-ERROR for an unknown keyword or a value of the wrong kind."
  (declare (ignore certificate key keytype password pfx ca-file ca-path
                   verify verify-client ciphers ssl-options min-version
                   max-version alpn crl-file crl-check pin-sha256 ocsp
                   ocsp-response ticket-keys))
  (check-keywords 'make-ssl-context args *context-keywords*)
  (check-context-keywords 'make-ssl-context args server)
  (build-context 'make-ssl-context args server verify-callback))

(defun build-context (function args server verify-callback)
  "A new SSL-CONTEXT configured with the MAKE-SSL-CONTEXT keywords ARGS."
  (let ((ctx (new-context-pointer server)))
    (handler-bind ((error (lambda (e)
                            (declare (ignore e))
                            (cl-async-ffi:tls-ctx-unref ctx))))
      (apply #'configure-context ctx function args))
    (make-instance 'ssl-context :pointer ctx :server server
                                :verify-callback verify-callback)))

(defun adopt-context (pointer server)
  "Wraps a foreign SSL_CTX* made elsewhere (never freed by us)."
  (unless (and (typep pointer 'sb-sys:system-area-pointer)
               (not (cl-async-ffi:null-pointer-p pointer)))
    (error ":ssl-ctx ~s: give a foreign pointer to an SSL_CTX, or an ~
            ssl-context made by make-ssl-context." pointer))
  (multiple-value-bind (ctx code) (cl-async-ffi:tls-ctx-adopt pointer server)
    (unless ctx
      (ssl-error code (format nil "cannot use the SSL_CTX given as :ssl-ctx: ~a"
                              (cl-async-ffi:strerror code))))
    (make-instance 'ssl-context :pointer ctx :server server)))

;;;# The default client contexts, cached per option set

(defvar *client-contexts* (make-hash-table :test 'equal)
  "Option list -> SSL-CONTEXT, so repeated connections with the same
settings share one context: the trust store is loaded once and sessions
can be resumed.")

(defvar *client-contexts-lock* (bt:make-lock "cl-async-ssl client contexts"))

(defparameter *client-context-cache-size* 64
  "How many distinct client configurations are kept.")

(defun cache-key-value (value)
  "VALUE as part of a cache key compared with EQUAL: octets as a string of
their codes, a function as the marker :function (the callback itself is
the socket's, not the context's)."
  (cond ((octets-p value) (map 'string #'code-char value))
        ((functionp value) :function)
        ((consp value) (mapcar #'cache-key-value value))
        (t value)))

(defun cached-client-context (options)
  "The cached client context for OPTIONS (a plist of MAKE-SSL-CONTEXT
keywords), made on first use."
  (let ((key (append (mapcar #'cache-key-value options)
                     (list :keylog (keylog-path)
                           :ciphers-default *ssl-default-ciphers*))))
    (bt:with-lock-held (*client-contexts-lock*)
      (or (gethash key *client-contexts*)
          (let ((context (build-context 'tcp-ssl-connect options nil nil)))
            (when (>= (hash-table-count *client-contexts*)
                      *client-context-cache-size*)
              (maphash (lambda (k v)
                         (declare (ignore v))
                         (free-ssl-context (gethash k *client-contexts*))
                         (remhash k *client-contexts*))
                       *client-contexts*))
            (setf (gethash key *client-contexts*) context))))))

;;;# Contexts for connections

(defun resolve-context (ssl-ctx server build)
  "The SSL-CONTEXT to use and whether the caller owns it: SSL-CTX (an
ssl-context, or a raw SSL_CTX* adopted and owned), else (funcall BUILD)."
  (cond ((typep ssl-ctx 'ssl-context)
         (when (ssl-context-freed ssl-ctx)
           (error ":ssl-ctx ~a was freed." ssl-ctx))
         (values ssl-ctx nil))
        (ssl-ctx (values (adopt-context ssl-ctx server) t))
        (t (funcall build))))
