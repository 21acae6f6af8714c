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

(defun version-code (version which)
  (case version
    ((nil) 0)
    ((:tlsv1 :tlsv1.0) #x0301)
    (:tlsv1.1 #x0302)
    (:tlsv1.2 #x0303)
    (:tlsv1.3 #x0304)
    (t (error "~a ~s: use :tlsv1.2 or :tlsv1.3 (or nil)." which version))))

(defun option-bits (options)
  (cond ((null options) 0)
        ((integerp options) options)
        ((listp options)
         (dolist (o options) (check-type o integer))
         (reduce #'logior options))
        (t (error ":ssl-options ~s: give a list of +ssl-op-...+ constants ~
                   or an integer." options))))

(defun keytype-code (keytype)
  (ecase keytype
    ((:pem nil) 1)
    ((:asn1 :der) 2)))

(defun alpn-wire (protocols)
  "The ALPN wire encoding of PROTOCOLS (a list of strings)."
  (let ((parts (mapcar (lambda (p)
                         (let ((o (babel:string-to-octets p :encoding :utf-8)))
                           (unless (<= 1 (length o) 255)
                             (error ":alpn protocol ~s: each name must be 1 to ~
                                     255 bytes." p))
                           o))
                       protocols)))
    (let ((wire (make-array (reduce #'+ parts :key (lambda (o) (1+ (length o))))
                            :element-type '(unsigned-byte 8)))
          (pos 0))
      (dolist (o parts wire)
        (setf (aref wire pos) (length o))
        (replace wire o :start1 (1+ pos))
        (incf pos (1+ (length o)))))))

(defun keylog-path ()
  (let ((f (or *ssl-keylog-file* (uiop:getenv "SSLKEYLOGFILE"))))
    (and f (plusp (length (namestring f))) (namestring f))))

(defun path-string (designator)
  (and designator (namestring (merge-pathnames designator))))

(defun configure-context (ctx &key server certificate key (keytype :pem) password
                                ca-file ca-path (verify t verify-p) verify-client
                                (ciphers nil ciphers-p) ssl-options min-version
                                max-version alpn)
  "Applies the keywords of MAKE-SSL-CONTEXT to the casl_tls_ctx CTX."
  (let ((list (cond (ciphers-p ciphers)
                    (server (concatenate 'string *ssl-default-ciphers*
                                         *ssl-server-cipher-exclusions*))
                    (t *ssl-default-ciphers*))))
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-ciphers ctx list)
                    (format nil "cipher list ~s rejected" list)))
  (let ((bits (option-bits ssl-options)))
    (unless (zerop bits)
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-options ctx bits)
                      ":ssl-options rejected")))
  (when (or min-version max-version)
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-versions
                         ctx (if min-version (version-code min-version :min-version) #x0303)
                         (version-code max-version :max-version))
                    "protocol versions rejected"))
  (when certificate
    (let ((path (path-string certificate)))
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-use-certificate-chain-file ctx path)
                      (format nil "cannot load the certificate chain ~a" path))))
  (when (or key certificate)
    (let ((path (path-string (or key certificate))))
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-use-private-key-file
                           ctx path (keytype-code keytype) password)
                      (format nil "cannot load the private key ~a" path))
      (when certificate
        (check-ctx-call ctx (cl-async-ffi:tls-ctx-check-private-key ctx)
                        (format nil "the key ~a does not match the certificate ~a"
                                path (path-string certificate))))))
  (let ((verifying (if server verify-client (if verify-p verify t))))
    (when (and verifying (not server))
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-load-system-trust ctx)
                      "cannot load the system trust store"))
    (when (or ca-file ca-path)
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-load-verify-locations
                           ctx (path-string ca-file) (path-string ca-path))
                      (format nil "cannot load trust anchors from ~{~a~^ and ~}"
                              (remove nil (list (path-string ca-file)
                                                (path-string ca-path))))))
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-verify
                         ctx (cond ((not verifying) 0)
                                   ((not server) 1)
                                   ((eq verify-client :optional) 1)
                                   ((member verify-client '(t :require)) 2)
                                   (t (error ":verify-client ~s: use nil, ~
                                              :optional or :require."
                                             verify-client))))
                    "verification mode rejected"))
  (when alpn
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-alpn ctx (alpn-wire alpn))
                    ":alpn rejected"))
  (let ((keylog (keylog-path)))
    (when keylog
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-keylog-file ctx keylog)
                      (format nil "cannot log keys to ~a" keylog))))
  ctx)

(defun new-context-pointer (server)
  (multiple-value-bind (ctx code) (cl-async-ffi:tls-ctx-new server)
    (unless ctx
      (ssl-error code (format nil "cannot create a TLS context: ~a"
                              (cl-async-ffi:strerror code))))
    ctx))

(defun make-ssl-context (&rest args &key server certificate key (keytype :pem)
                                      password ca-file ca-path (verify t)
                                      verify-client ciphers ssl-options
                                      min-version max-version alpn)
  "A reusable TLS configuration (see SSL-CONTEXT).  Secure defaults: TLS 1.2
minimum, no renegotiation, no compression, session tickets.

  :server         t for a server context (default: client).
  :certificate    PEM chain file (leaf first, then intermediates); needed by
                  servers, optional for clients (client certificates).
  :key            private key file (default: the certificate file).
  :keytype        :pem (default) or :asn1 (DER).
  :password       passphrase of an encrypted key.
  :ca-file :ca-path  trust anchors (a PEM file, a hashed directory), added
                  to the system trust store for clients.
  :verify         clients: verify the server's chain (default t).
  :verify-client  servers: nil (default), :optional or :require a client
                  certificate, verified against :ca-file/:ca-path.
  :ciphers        TLS 1.2 cipher list (default *ssl-default-ciphers*).
  :ssl-options    list of +ssl-op-...+ constants (OR'ed) or an integer.
  :min-version :max-version  :tlsv1.2 or :tlsv1.3.
  :alpn           list of protocol names (clients: offered; servers: in
                  order of preference).

Signals TCP-SSL-ERROR if a file cannot be loaded or a setting is rejected."
  (declare (ignore certificate key keytype password ca-file ca-path verify
                   verify-client ciphers ssl-options min-version max-version
                   alpn))
  (let ((ctx (new-context-pointer server)))
    (handler-bind ((error (lambda (e)
                            (declare (ignore e))
                            (cl-async-ffi:tls-ctx-unref ctx))))
      (apply #'configure-context ctx args))
    (make-instance 'ssl-context :pointer ctx :server server)))

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

(defun cached-client-context (options)
  "The cached client context for OPTIONS (a plist of MAKE-SSL-CONTEXT
keywords), made on first use."
  (let ((key (append options (list :keylog (keylog-path)
                                   :ciphers-default *ssl-default-ciphers*))))
    (bt:with-lock-held (*client-contexts-lock*)
      (or (gethash key *client-contexts*)
          (let ((context (apply #'make-ssl-context options)))
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
