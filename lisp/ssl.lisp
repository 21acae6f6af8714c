;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; ssl.lisp --- ssl-socket, tcp-ssl-connect, tcp-ssl-server, start-tls.
;;;;
;;;; The TLS filter runs in C between the socket and the application:
;;;; ciphertext never reaches Lisp.  An ssl-socket is a tcp-socket whose C
;;;; connection carries a filter; it specialises two generics of the core
;;;; (SOCKET-ATTACHED to start the filter, OBJECT-CONNECTED to remember the
;;;; negotiated details), and servers specialise SERVER-ATTACHED.

(in-package #:cl-async-ssl)

(defclass ssl-socket (tcp-socket)
  ((context :initform nil :accessor ssl-socket-context
            :documentation "The SSL-CONTEXT the connection uses.")
   (owns-context :initform nil :accessor ssl-socket-owns-context
                 :documentation "True when the context was made for this
socket alone and is freed when it closes.")
   (server-side :initform nil :accessor ssl-socket-server-side)
   (verify-name :initform nil :accessor ssl-socket-verify-name
                :documentation "The name sent as SNI and checked against
the certificate.")
   (session-key :initform nil :accessor ssl-socket-session-key)
   (handshake-timeout :initform nil :accessor ssl-socket-handshake-timeout)
   (sni-function :initform nil :accessor ssl-socket-sni-function)
   (details :initform nil :accessor ssl-socket-details
            :documentation "Plist of what the handshake negotiated.")
   (peer-certificate :initform :unknown :accessor ssl-socket-peer-cert-cache))
  (:documentation "A socket wrapped in TLS.  Every cl-async function that
takes a socket accepts it.  Its connect-cb runs once the TLS handshake is
complete and the peer verified."))

(defclass tcp-ssl-server (tcp-server)
  ((context :initform nil :accessor tcp-ssl-server-context)
   (owns-context :initform nil :accessor tcp-ssl-server-owns-context)
   (handshake-timeout :initform nil :accessor tcp-ssl-server-handshake-timeout)
   (sni-function :initform nil :accessor tcp-ssl-server-sni-function))
  (:documentation "A TLS server, returned by TCP-SSL-SERVER.  Close it with
CLOSE-TCP-SERVER (which also frees the context it made)."))

(defun tls-of (socket)
  (let ((c (socket-c socket)))
    (and c (let ((tls (cl-async-ffi:tcp-tls c)))
             (and (not (cl-async-ffi:null-pointer-p tls)) tls)))))

;;;# Conditions for TLS error codes

(defun verify-hint (socket code)
  (if (eq (socket-direction socket) :in)
      "the client must present a certificate issued by a CA in the server's :ca-file or :ca-path"
      (case code
        ((62 64)
         (format nil "the certificate is not valid for ~s: connect to a name ~
                      it covers, or pass :hostname with the name it was ~
                      issued for (or :verify nil)"
                 (ssl-socket-verify-name socket)))
        ((9 10)
         "the certificate is outside its validity period: check the clock or renew it (or pass :verify nil)")
        (t "pass :ca-file (or :ca-path) with the CA that issued it, or :verify nil to skip verification"))))

(defun make-tls-condition (socket code text)
  (let ((tls (tls-of socket)))
    (cond ((eql code cl-async-ffi:+everify+)
           (let* ((vcode (if tls (cl-async-ffi:tls-verify-result tls) 0))
                  (vmsg (and tls (cl-async-ffi:tls-verify-string tls))))
             (make-condition 'tcp-ssl-verify-error
                             :socket socket :code code :reason text
                             :verify-code vcode
                             :verify-message (if (zerop vcode) text vmsg)
                             :msg (format nil "~a: ~a (~a)" (socket-label socket)
                                          text (verify-hint socket vcode)))))
          ((eql code cl-async-ffi:+etruncated+)
           (make-condition 'tcp-ssl-truncated
                           :socket socket :code code :reason text
                           :msg (format nil "~a: ~a" (socket-label socket) text)))
          (t
           (make-condition 'tcp-ssl-error
                           :socket socket :code code :reason text
                           :msg (format nil "~a: TLS failure: ~a" (socket-label socket)
                                        text))))))

(dolist (code (list cl-async-ffi:+etls+ cl-async-ffi:+everify+
                    cl-async-ffi:+etruncated+ cl-async-ffi:+econfig+))
  (register-error-code code #'make-tls-condition))

;;;# The socket's life

(defun ip-literal-p (host)
  (and (stringp host) (ip-address-p host)))

(defmethod socket-attached ((socket ssl-socket))
  (let* ((ctx (ssl-socket-context socket))
         (rc (cl-async-ffi:tcp-start-tls
              (socket-c socket) (ssl-context-c ctx)
              (ssl-socket-server-side socket)
              (ssl-socket-verify-name socket)
              (ssl-socket-session-key socket)
              (timeout-ms (ssl-socket-handshake-timeout socket)))))
    (unless (zerop rc)
      (ssl-error rc (format nil "~a: cannot start TLS: ~a" (socket-label socket)
                            (cl-async-ffi:strerror rc))
                 :socket socket))))

(defun snapshot-details (socket)
  (let ((tls (tls-of socket)))
    (when tls
      (setf (ssl-socket-details socket)
            (list :protocol (cl-async-ffi:tls-protocol tls)
                  :cipher (cl-async-ffi:tls-cipher tls)
                  :alpn (cl-async-ffi:tls-alpn tls)
                  :server-name (cl-async-ffi:tls-server-name tls)
                  :session-reused (cl-async-ffi:tls-session-reused-p tls))))))

(defmethod object-connected :before ((socket ssl-socket))
  (snapshot-details socket))

(defmethod object-closed :after ((socket ssl-socket))
  (release-socket-context socket))

(defmethod object-loop-closed :after ((socket ssl-socket))
  (release-socket-context socket))

(defun release-socket-context (socket)
  (when (ssl-socket-owns-context socket)
    (setf (ssl-socket-owns-context socket) nil)
    (free-ssl-context (ssl-socket-context socket))))

;;;# Queries

(defun ssl-detail (socket key)
  (getf (ssl-socket-details socket) key))

(defun ssl-socket-protocol (socket)
  "The negotiated protocol (\"TLSv1.3\", \"TLSv1.2\"), or nil before the
handshake."
  (ssl-detail socket :protocol))

(defun ssl-socket-cipher (socket)
  "The negotiated cipher suite (\"TLS_AES_256_GCM_SHA384\"), or nil."
  (ssl-detail socket :cipher))

(defun ssl-socket-alpn (socket)
  "The protocol ALPN selected (a string), or nil if none."
  (ssl-detail socket :alpn))

(defun ssl-socket-server-name (socket)
  "The name the client asked for with SNI: on a server socket, what the
client sent; on a client, the name it sent.  Nil if none."
  (if (ssl-socket-server-side socket)
      (ssl-detail socket :server-name)
      (let ((name (ssl-socket-verify-name socket)))
        (and name (not (ip-literal-p name)) name))))

(defun ssl-socket-session-reused-p (socket)
  "True if the connection resumed an earlier TLS session."
  (ssl-detail socket :session-reused))

(defun unix-to-universal (seconds)
  (+ seconds (encode-universal-time 0 0 0 1 1 1970 0)))

(defun split-lines (text)
  (loop :for start := 0 :then (1+ end)
        :for end := (position #\Newline text :start start)
        :for line := (subseq text start end)
        :when (plusp (length line)) :collect line
        :while end))

(defun ssl-socket-peer-certificate (socket)
  "The peer's certificate as a plist, or nil if it sent none:
  :subject :issuer     RFC 2253 strings (\"CN=localhost,O=Example\")
  :sans                list of DNS names and IP addresses
  :not-before :not-after  universal times
  :serial              upper-case hex string
  :sha256              colon-separated hex fingerprint of the DER
  :pem                 the certificate, PEM
Read it from the connect-cb on (the first read is cached): once the socket
has closed, only a value read before is still available, else nil."
  (let ((cached (ssl-socket-peer-cert-cache socket)))
    (if (not (eq cached :unknown))
        cached
        (let ((tls (tls-of socket)))
          (when (and tls (cl-async-ffi:tls-handshake-done-p tls))
            (setf (ssl-socket-peer-cert-cache socket)
                  (let ((raw (cl-async-ffi:tls-peer-cert tls)))
                    (and raw
                         (list :subject (getf raw :subject)
                               :issuer (getf raw :issuer)
                               :sans (split-lines (or (getf raw :sans) ""))
                               :not-before (unix-to-universal (getf raw :not-before))
                               :not-after (unix-to-universal (getf raw :not-after))
                               :serial (getf raw :serial)
                               :sha256 (getf raw :sha256)
                               :pem (getf raw :pem))))))))))

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

;;;# tcp-ssl-server

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

;;;# STARTTLS

(defun start-tls (socket &rest args &key server connect-cb (hostname nil hostname-p)
                                      (handshake-timeout *ssl-handshake-timeout*)
                                      (session t) &allow-other-keys)
  "Upgrades SOCKET (or the socket of an async stream), a connected plain TCP
socket, to TLS in place (STARTTLS), keeping its read-cb, write-cb and
event-cb; it becomes an SSL-SOCKET.  With :SERVER t it takes the server
side and the keywords of TCP-SSL-SERVER (:certificate, :key, :ssl-ctx,
:verify-client, ...); otherwise the client side and those of
TCP-SSL-CONNECT (:ca-file, :verify, :hostname, :alpn, ...).  :CONNECT-CB,
if given, runs once the handshake is complete.

Data written before the call goes out first as plaintext (write the
protocol's \"go ahead\" reply, then call START-TLS); data received and
not yet handed to the read-cb is fed to TLS.  Writes made after the call
are held until the handshake completes.  Returns SOCKET."
  (let* ((socket (if (typep socket 'async-stream) (stream-socket socket) socket))
         (options (copy-list args)))
    (dolist (k '(:server :connect-cb :hostname :handshake-timeout :session))
      (remf options k))
    (check-type socket tcp-socket)
    (when (typep socket 'ssl-socket)
      (error "start-tls: ~a already runs TLS." socket))
    (when (or (socket-closed-p socket) (null (socket-c socket)))
      (error 'socket-closed :socket socket :code -1
                            :msg "start-tls: the socket is closed"))
    (unless (socket-connected socket)
      (error "start-tls: ~a is not connected yet; call it from the connect-cb ~
              or later, or use tcp-ssl-connect." socket))
    (multiple-value-bind (context owned)
        (if server
            (apply #'server-context options)
            (apply #'client-context
                   (loop :for (k v) :on options :by #'cddr
                         :when (member k '(:ssl-ctx :ssl-options :ciphers :verify
                                           :ca-file :ca-path :certificate :key
                                           :keytype :password :alpn :min-version
                                           :max-version))
                           :append (list k v))))
      (change-class socket 'ssl-socket)
      (let ((name (if hostname-p hostname (socket-host socket))))
        (setf (ssl-socket-context socket) context
              (ssl-socket-owns-context socket) owned
              (ssl-socket-server-side socket) (and server t)
              (ssl-socket-verify-name socket) (and (not server) name)
              (ssl-socket-session-key socket)
              (and session (not server) name
                   (format nil "~a:~a:~a" (socket-host socket) (socket-port socket) name))
              (ssl-socket-handshake-timeout socket) handshake-timeout
              (socket-connect-cb socket) connect-cb))
      (handler-bind ((error (lambda (e)
                              (declare (ignore e))
                              (release-socket-context socket))))
        (socket-attached socket))
      socket)))
