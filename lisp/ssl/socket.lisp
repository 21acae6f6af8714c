;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; socket.lisp --- ssl-socket: its conditions, its life, and the queries
;;;; of what its handshake negotiated.
;;;;
;;;; The TLS filter runs in C between the socket and the application:
;;;; ciphertext never reaches Lisp.  An ssl-socket is a tcp-socket whose C
;;;; connection carries a filter; it specialises two generics of the core
;;;; (SOCKET-ATTACHED to start the filter, OBJECT-CONNECTED to remember the
;;;; negotiated details), and servers (server.lisp) specialise
;;;; SERVER-ATTACHED.

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
   (ocsp-function :initform nil :accessor ssl-socket-ocsp-function
                  :documentation "The server's :ocsp-response function.")
   (details :initform nil :accessor ssl-socket-details
            :documentation "Plist of what the handshake negotiated.")
   (peer-certificate :initform :unknown :accessor ssl-socket-peer-cert-cache)
   (peer-chain :initform :unknown :accessor ssl-socket-peer-chain-cache)
   (ocsp-response :initform nil :accessor ssl-socket-ocsp-cache)
   (verify-callback :initform nil :accessor ssl-socket-verify-callback
                    :documentation "(lambda (socket chain)) that accepts
the verified peer, or nil."))
  (:documentation "A socket wrapped in TLS.  Every cl-async function that
takes a socket accepts it.  Its connect-cb runs once the TLS handshake is
complete and the peer verified."))

(defun tls-of (socket)
  (let ((c (socket-c socket)))
    (and c (let ((tls (cl-async-ffi:tcp-tls c)))
             (and (not (cl-async-ffi:null-pointer-p tls)) tls)))))

;;;# Conditions for TLS error codes

(defun system-trust-store-empty-p ()
  "True when OpenSSL's default trust store (Debian's, or $SSL_CERT_FILE /
$SSL_CERT_DIR) holds no certificate."
  (let ((file (or (uiop:getenv "SSL_CERT_FILE") "/etc/ssl/certs/ca-certificates.crt"))
        (dir (or (uiop:getenv "SSL_CERT_DIR") "/etc/ssl/certs/")))
    (and (not (probe-file file))
         (null (directory (merge-pathnames "*.0" (uiop:ensure-directory-pathname dir)))))))

(defun verify-hint (socket code text)
  "What to do about verification failure CODE (TEXT: the library's)."
  (cond ((search "pin" text)
         "the key is not one of :pin-sha256: check the pins, or the peer changed its key")
        ((search "OCSP" text)
         "the peer's OCSP staple was not accepted: check its responder, or pass :ocsp nil")
        ((search ":verify-callback" text)
         "the :verify-callback refused the peer")
        ((eql code 23)
         "the certificate was revoked by its issuer: the peer needs a new one")
        ((eql code 3)
         "no CRL for a certificate's issuer: add it to :crl-file (with :crl-check :chain every CA needs one)")
        ((eq (socket-direction socket) :in)
         "the client must present a certificate issued by a CA in the server's :ca-file or :ca-path")
        ((member code '(62 64))
         (format nil "the certificate is not valid for ~s: connect to a name ~
                      it covers, or pass :hostname with the name it was ~
                      issued for (or :verify nil)"
                 (ssl-socket-verify-name socket)))
        ((member code '(9 10))
         "the certificate is outside its validity period: check the clock or renew it (or pass :verify nil)")
        ((and (member code '(2 19 20)) (system-trust-store-empty-p))
         "the system trust store is empty: install the Debian package ca-certificates (apt-get install ca-certificates), or pass :ca-file with the CA that issued it")
        (t "pass :ca-file (or :ca-path) with the CA that issued it, or :verify nil to skip verification")))

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
                                          text (verify-hint socket vcode text)))))
          ((eql code cl-async-ffi:+etruncated+)
           (make-condition 'tcp-ssl-truncated
                           :socket socket :code code :reason text
                           :msg (format nil "~a: ~a" (socket-label socket) text)))
          ((eql code cl-async-ffi:+etlseof+)
           (make-condition 'tcp-ssl-handshake-eof
                           :socket socket :code code :reason text
                           :msg (format nil "~a: ~a (the peer gave up, or does ~
                                             not speak TLS)"
                                        (socket-label socket) text)))
          (t
           (make-condition 'tcp-ssl-error
                           :socket socket :code code :reason text
                           :msg (format nil "~a: TLS failure: ~a" (socket-label socket)
                                        text))))))

(dolist (code (list cl-async-ffi:+etls+ cl-async-ffi:+everify+
                    cl-async-ffi:+etruncated+ cl-async-ffi:+econfig+
                    cl-async-ffi:+etlseof+))
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

(defun check-peer (socket)
  "Runs the socket's :verify-callback on the verified peer: nil when it
accepts, else the reason it refused."
  (let ((fn (ssl-socket-verify-callback socket)))
    (handler-case
        (if (funcall fn socket (ssl-socket-peer-certificate-chain socket))
            nil
            "certificate verify failed: refused by the :verify-callback")
      (error (e)
        (format nil "certificate verify failed: the :verify-callback ~
                     signalled ~a: ~a" (type-of e) e)))))

(defmethod object-connected :around ((socket ssl-socket))
  ;; The handshake is complete and OpenSSL verified the peer.  With a
  ;; :verify-callback the C side holds our data until it answered; the
  ;; connect-cb runs only for a peer it accepted.
  (snapshot-details socket)
  (let ((c (socket-c socket)))
    (if (and c (ssl-socket-verify-callback socket))
        (let ((reason (check-peer socket)))
          (cl-async-ffi:tcp-peer-checked c reason)
          (unless reason
            (call-next-method)))
        (call-next-method))))

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

(defun certificate-plist (raw)
  "A certificate of the C library (a plist of raw fields) as the plist
SSL-SOCKET-PEER-CERTIFICATE documents."
  (list :subject (getf raw :subject)
        :issuer (getf raw :issuer)
        :sans (split-lines (or (getf raw :sans) ""))
        :not-before (unix-to-universal (getf raw :not-before))
        :not-after (unix-to-universal (getf raw :not-after))
        :serial (getf raw :serial)
        :sha256 (getf raw :sha256)
        :pem (getf raw :pem)))

(defun handshake-tls (socket)
  (let ((tls (tls-of socket)))
    (and tls (cl-async-ffi:tls-handshake-done-p tls) tls)))

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
        (let ((tls (handshake-tls socket)))
          (when tls
            (setf (ssl-socket-peer-cert-cache socket)
                  (let ((raw (cl-async-ffi:tls-peer-cert tls)))
                    (and raw (certificate-plist raw)))))))))

(defun ssl-socket-peer-certificate-chain (socket)
  "The peer's certificate chain, leaf first, as a list of plists like
SSL-SOCKET-PEER-CERTIFICATE's: the chain OpenSSL verified (up to the trust
anchor) when the peer was verified, else the certificates it sent; nil if
it sent none.  Cached like SSL-SOCKET-PEER-CERTIFICATE."
  (let ((cached (ssl-socket-peer-chain-cache socket)))
    (if (not (eq cached :unknown))
        cached
        (let ((tls (handshake-tls socket)))
          (when tls
            (setf (ssl-socket-peer-chain-cache socket)
                  (mapcar #'certificate-plist
                          (cl-async-ffi:tls-peer-chain tls))))))))

(defun ssl-socket-ocsp-response (socket)
  "On a client asking with :ocsp: the DER OCSP response the server stapled
(an octet vector, checked before the connect-cb), or nil if none came."
  (or (ssl-socket-ocsp-cache socket)
      (let ((tls (tls-of socket)))
        (and tls (setf (ssl-socket-ocsp-cache socket)
                       (cl-async-ffi:tls-ocsp-response tls))))))
