;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; server.lisp --- tcp-ssl-server: its class, the generics of the core it
;;;; specialises, its context and SNI certificates.

(in-package #:cl-async-ssl)

(defclass tcp-ssl-server (tcp-server)
  ((context :initform nil :accessor tcp-ssl-server-context)
   (owns-context :initform nil :accessor tcp-ssl-server-owns-context)
   (handshake-timeout :initform nil :accessor tcp-ssl-server-handshake-timeout)
   (sni-function :initform nil :accessor tcp-ssl-server-sni-function))
  (:documentation "A TLS server, returned by TCP-SSL-SERVER.  Close it with
CLOSE-TCP-SERVER (which also frees the context it made)."))

;;;# The generics of the core a TLS server specialises

(defmethod server-socket-class ((server tcp-ssl-server))
  'ssl-socket)

(defmethod accept-connects-p ((server tcp-ssl-server))
  nil)

(defmethod server-attached ((server tcp-ssl-server))
  (let ((rc (cl-async-ffi:server-set-tls
             (socket-server-c server)
             (ssl-context-c (tcp-ssl-server-context server))
             (timeout-ms (tcp-ssl-server-handshake-timeout server)))))
    (unless (zerop rc)
      (ssl-error rc (format nil "cannot set up TLS on the server: ~a"
                            (cl-async-ffi:strerror rc))))))

(defmethod socket-accepted ((server tcp-ssl-server) (socket ssl-socket))
  (setf (ssl-socket-server-side socket) t
        (ssl-socket-context socket) (tcp-ssl-server-context server)
        (ssl-socket-sni-function socket) (tcp-ssl-server-sni-function server)))

(defmethod object-sni ((socket ssl-socket) name)
  (let ((fn (ssl-socket-sni-function socket))
        (choice nil))
    (unwind-protect
         (when fn
           (catch-app-errors (socket-event-cb socket)
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

(defun release-server-context (server)
  (when (tcp-ssl-server-owns-context server)
    (setf (tcp-ssl-server-owns-context server) nil)
    (free-ssl-context (tcp-ssl-server-context server))))

(defun server-context (&rest args &key ssl-ctx certificate key (keytype :pem)
                                      password ssl-options (ciphers nil ciphers-p)
                                      ca-file ca-path verify-client alpn
                                      min-version max-version sni)
  "The server's SSL-CONTEXT and whether the server owns it."
  (declare (ignore keytype password ssl-options ciphers ca-file ca-path
                   verify-client alpn min-version max-version))
  (let ((settings (copy-list args)))
    (dolist (k '(:ssl-ctx :sni :certificate :key)) (remf settings k))
    (unless ciphers-p (remf settings :ciphers))
    (multiple-value-bind (context owned)
        (resolve-context
         ssl-ctx t
         (lambda ()
           (unless certificate
             (error "tcp-ssl-server needs :certificate (a PEM chain file) and ~
                     :key (or :ssl-ctx with a context that has them)."))
           (values (apply #'make-ssl-context :server t :certificate certificate
                          :key key settings)
                   t)))
      (handler-bind ((error (lambda (e)
                              (declare (ignore e))
                              (when owned (free-ssl-context context)))))
        (add-sni-entries context sni settings))
      (values context owned))))

(defun add-sni-entries (context sni settings)
  "Sets up :sni on CONTEXT: a list of (hostname certificate key [password])
entries, each a child context with SETTINGS, or a function asked for each
name (see TCP-SSL-SERVER)."
  (cond ((null sni))
        ((or (functionp sni) (and (symbolp sni) (fboundp sni)))
         (check-ctx-call (ssl-context-c context)
                         (cl-async-ffi:tls-ctx-set-sni-ask (ssl-context-c context) t)
                         "cannot enable :sni"))
        ((listp sni)
         (dolist (entry sni)
           (destructuring-bind (name certificate &optional key password) entry
             (let ((child (apply #'make-ssl-context :server t
                                 :certificate certificate :key key
                                 (if password
                                     (list* :password password
                                            (let ((s (copy-list settings)))
                                              (remf s :password) s))
                                     settings))))
               (push child (ssl-context-sni-contexts context))
               (check-ctx-call (ssl-context-c context)
                               (cl-async-ffi:tls-ctx-add-sni (ssl-context-c context)
                                                             name (ssl-context-c child))
                               (format nil "cannot add the :sni entry ~s" name))))))
        (t (error ":sni ~s: give a list of (hostname certificate key) entries ~
                   or a function of the requested name." sni))))

;;;# tcp-ssl-server

(defun tcp-ssl-server (bind-address port read-cb &rest args)
  "Like TCP-SERVER, but every accepted connection runs TLS (an SSL-SOCKET);
its connect-cb runs once the handshake is complete.  Every keyword of
TCP-SERVER is accepted (:event-cb :connect-cb :backlog :stream :fd), plus:

  :certificate   PEM chain file (leaf first, then intermediates, like
                 nginx); it may also hold the key.
  :key           private key file (default: the certificate file).
  :keytype       :pem (default) or :asn1.
  :password      passphrase of an encrypted key.
  :ssl-ctx       an SSL-CONTEXT, or a foreign SSL_CTX* made elsewhere (never
                 freed by us; the certificate keywords, :ssl-options and
                 :ciphers are then ignored).
  :ssl-options   list of +ssl-op-...+ constants (OR'ed) or an integer.
  :ciphers       TLS 1.2 cipher list (default *ssl-default-ciphers*).
  :verify-client nil (default), :optional or :require a client certificate,
                 checked against :ca-file / :ca-path.
  :alpn          protocols in order of preference; a client offering none
                 of them is served without ALPN.
  :sni           other certificates by requested name: a list of
                 (hostname certificate key [password]) entries (hostname
                 may be \"*.example.com\"), or a function of the requested
                 name (a string, or nil) returning an SSL-CONTEXT made with
                 :server t (kept alive by the caller), or nil for the
                 default certificate.
  :min-version :max-version  :tlsv1.2 or :tlsv1.3.
  :handshake-timeout  seconds (default *ssl-handshake-timeout*).

Signals TCP-SSL-ERROR if the certificate or key cannot be loaded or do not
match, and SOCKET-ADDRESS-IN-USE if the port is taken.  Handshake failures
reach the event-cb as TCP-SSL-ERROR, and the connection is closed."
  (multiple-value-bind (event-cb args) (split-event-cb args)
    (destructuring-bind (&key connect-cb backlog stream fd ssl-ctx certificate
                              key (keytype :pem) password ssl-options
                              (ciphers nil ciphers-p) ca-file ca-path
                              verify-client alpn min-version max-version
                              (handshake-timeout *ssl-handshake-timeout*) sni
                         &allow-other-keys)
        args
      (check-event-loop-running)
      (multiple-value-bind (context owned)
          (apply #'server-context
                 :ssl-ctx ssl-ctx :certificate certificate :key key
                 :keytype keytype :password password :ssl-options ssl-options
                 :ca-file ca-file :ca-path ca-path :verify-client verify-client
                 :alpn alpn :min-version min-version :max-version max-version
                 :sni sni
                 (and ciphers-p (list :ciphers ciphers)))
        (let ((ok nil))
          (unwind-protect
               (let ((server (make-server 'tcp-ssl-server bind-address port read-cb
                                          :event-cb event-cb :connect-cb connect-cb
                                          :backlog backlog :stream stream :fd fd
                                          :before-listen
                                          (lambda (server)
                                            (setf (tcp-ssl-server-context server) context
                                                  (tcp-ssl-server-owns-context server) owned
                                                  (tcp-ssl-server-handshake-timeout server)
                                                  handshake-timeout
                                                  (tcp-ssl-server-sni-function server)
                                                  (and sni (not (listp sni)) sni))))))
                 (setf ok t)
                 server)
            (unless ok
              (when owned (free-ssl-context context)))))))))
