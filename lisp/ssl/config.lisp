;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; config.lisp --- from the keywords of make-ssl-context, tcp-ssl-connect
;;;; and tcp-ssl-server to a configured casl_tls_ctx: checking each value,
;;;; then handing it to the C library.

(in-package #:cl-async-ssl)

;;;# The keywords

(defparameter *context-keywords*
  '(:server :certificate :key :keytype :password :pfx :ca-file :ca-path
    :verify :verify-client :ciphers :ssl-options :min-version :max-version
    :alpn :crl-file :crl-check :pin-sha256 :verify-callback :ocsp
    :ocsp-response :ticket-keys)
  "The keywords MAKE-SSL-CONTEXT takes.")

(defparameter *server-only-keywords* '(:verify-client :ticket-keys :ocsp-response)
  "Context keywords that only servers take.")

(defparameter *client-only-keywords* '(:verify :ocsp)
  "Context keywords that only clients take.")

;;;# Values

(defun octets-p (x)
  "True if X is a vector of octets (not a string)."
  (and (vectorp x) (not (stringp x))
       (or (typep x '(vector (unsigned-byte 8)))
           (every (lambda (e) (typep e '(unsigned-byte 8))) x))))

(defun simple-octets (x)
  (coerce x '(simple-array (unsigned-byte 8) (*))))

(defun file-name-p (x)
  (or (stringp x) (pathnamep x)))

(defun path-string (designator)
  (and designator (namestring (merge-pathnames designator))))

(defun check-source (function keyword value)
  "VALUE of KEYWORD must name a file (a string or pathname) or hold a
file's contents (octets)."
  (unless (or (file-name-p value) (octets-p value))
    (argument-error function keyword
                    "~s is neither a file name (a string or a pathname) nor ~
                     an octet vector holding the file's contents." value)))

(defun source-list (function keyword value)
  "VALUE (one file name or octet vector, or a list of them) as a list."
  (let ((list (if (and (listp value) value) value (list value))))
    (dolist (v list list)
      (check-source function keyword v))))

(defun read-octets (function keyword path)
  "The contents of the file PATH (for KEYWORD of FUNCTION)."
  (handler-case
      (with-open-file (in (merge-pathnames path) :element-type '(unsigned-byte 8))
        (let ((octets (make-array (file-length in) :element-type '(unsigned-byte 8))))
          (read-sequence octets in)
          octets))
    (file-error (e)
      (argument-error function keyword "cannot read ~a: ~a"
                      (path-string path) e))))

(defun version-code (function version which)
  (case version
    ((nil) 0)
    ((:tlsv1 :tlsv1.0) #x0301)
    (:tlsv1.1 #x0302)
    (:tlsv1.2 #x0303)
    (:tlsv1.3 #x0304)
    (t (argument-error function which "~s: use :tlsv1.2 or :tlsv1.3 (or nil)."
                       version))))

(defparameter *ssl-option-names*
  '(+ssl-op-all+ +ssl-op-no-query-mtu+ +ssl-op-cookie-exchange+
    +ssl-op-no-ticket+ +ssl-op-cisco-anyconnect+
    +ssl-op-no-session-resumption-on-renegotiation+ +ssl-op-no-compression+
    +ssl-op-allow-unsafe-legacy-renegotiation+ +ssl-op-single-ecdh-use+
    +ssl-op-single-dh-use+ +ssl-op-ephemeral-rsa+
    +ssl-op-cipher-server-preference+ +ssl-op-tls-rollback-bug+
    +ssl-op-no-sslv2+ +ssl-op-no-sslv3+ +ssl-op-no-tlsv1+ +ssl-op-no-tlsv1-1+
    +ssl-op-no-tlsv1-2+ +ssl-op-no-tlsv1-3+ +ssl-op-no-renegotiation+)
  "The option constants :ssl-options takes.")

(defun option-bits (function options)
  "The SSL_OP_* bits of OPTIONS: nil, an integer, or a list of +ssl-op-...+
constants (their values) to OR together."
  (flet ((bad (o)
           (argument-error function :ssl-options
                           "~s is not an option: give a list of the constants ~
                            ~{~(~a~)~^, ~} (their values, as in ~
                            (list as-ssl:+ssl-op-no-tlsv1-3+)), or an integer."
                           o *ssl-option-names*)))
    (cond ((null options) 0)
          ((typep options '(integer 0)) options)
          ((listp options)
           (dolist (o options (reduce #'logior options))
             (unless (typep o '(integer 0)) (bad o))))
          (t (bad options)))))

(defun keytype-code (function keytype)
  (case keytype
    ((:pem nil) 1)
    ((:asn1 :der) 2)
    (t (argument-error function :keytype "~s: use :pem or :asn1." keytype))))

(defun alpn-wire (function protocols)
  "The ALPN wire encoding of PROTOCOLS (a list of strings)."
  (unless (and (listp protocols) (every #'stringp protocols))
    (argument-error function :alpn "~s: give a list of protocol names as ~
                                    strings, such as (\"h2\" \"http/1.1\")."
                    protocols))
  (let* ((parts (mapcar (lambda (p)
                          (let ((o (babel:string-to-octets p :encoding :utf-8)))
                            (unless (<= 1 (length o) 255)
                              (argument-error function :alpn
                                              "protocol ~s: each name must be ~
                                               1 to 255 bytes." p))
                            o))
                        protocols))
         (wire (make-array (reduce #'+ parts :key (lambda (o) (1+ (length o))))
                           :element-type '(unsigned-byte 8)))
         (pos 0))
    (dolist (o parts wire)
      (setf (aref wire pos) (length o))
      (replace wire o :start1 (1+ pos))
      (incf pos (1+ (length o))))))

(defun base64-decode (string)
  "The octets STRING encodes in base64 (standard or URL alphabet, padding
optional), or nil if it is not base64."
  (let ((bits 0) (nbits 0) (out '()))
    (loop :for ch :across string
          :for v := (cond ((char<= #\A ch #\Z) (- (char-code ch) 65))
                          ((char<= #\a ch #\z) (+ 26 (- (char-code ch) 97)))
                          ((char<= #\0 ch #\9) (+ 52 (- (char-code ch) 48)))
                          ((member ch '(#\+ #\-)) 62)
                          ((member ch '(#\/ #\_)) 63)
                          ((char= ch #\=) :pad)
                          (t :bad))
          :do (case v
                (:bad (return-from base64-decode nil))
                (:pad)
                (t (setf bits (logior (ash (logand bits #xffff) 6) v))
                   (incf nbits 6)
                   (when (>= nbits 8)
                     (decf nbits 8)
                     (push (ldb (byte 8 nbits) bits) out)))))
    (coerce (nreverse out) '(simple-array (unsigned-byte 8) (*)))))

(defun pin-digests (function pins)
  "The 32-byte SHA-256 digests of PINS: a list of base64 strings, each
optionally prefixed \"sha256//\" as curl and HPKP write them."
  (let ((pins (if (stringp pins) (list pins) pins)))
    (unless (and (listp pins) (every #'stringp pins))
      (argument-error function :pin-sha256
                      "~s: give a list of base64 SHA-256 digests of public ~
                       keys, such as \"sha256//AbC...=\"." pins))
    (mapcar (lambda (pin)
              (let* ((b64 (if (and (> (length pin) 8)
                                   (string-equal "sha256//" pin :end2 8))
                              (subseq pin 8)
                              pin))
                     (digest (base64-decode b64)))
                (unless (and digest (= (length digest) 32))
                  (argument-error function :pin-sha256
                                  "~s is not a base64 SHA-256 digest (32 ~
                                   bytes): make one with openssl x509 -pubkey ~
                                   -noout | openssl pkey -pubin -outform DER | ~
                                   openssl dgst -sha256 -binary | base64."
                                  pin))
                digest))
            pins)))

(defun ticket-key-list (function keys)
  "KEYS (one 80-byte octet vector, or a list of them) as a list of simple
octet vectors."
  (let ((list (if (octets-p keys) (list keys) keys)))
    (unless (and (listp list) list
                 (every (lambda (k) (and (octets-p k)
                                         (= (length k) cl-async-ffi:+ticket-key-length+)))
                        list))
      (argument-error function :ticket-keys
                      "~s: give an 80-byte octet vector (16 bytes of name, 32 ~
                       of HMAC key, 32 of AES key; e.g. from /dev/urandom), or ~
                       a list of them, the first issuing tickets." keys))
    (mapcar #'simple-octets list)))

(defun ocsp-mode (function ocsp)
  (case ocsp
    ((nil) cl-async-ffi:+ocsp-off+)
    ((t) cl-async-ffi:+ocsp-ask+)
    (:require cl-async-ffi:+ocsp-require+)
    (t (argument-error function :ocsp "~s: use nil (do not ask), t (ask, and ~
                                       check what comes) or :require." ocsp))))

(defun ocsp-response-octets (function value)
  "A server's :ocsp-response given as octets or a file name, as octets."
  (cond ((null value) nil)
        ((octets-p value) (simple-octets value))
        ((file-name-p value) (read-octets function :ocsp-response value))
        (t (argument-error function :ocsp-response
                           "~s: give the DER response as octets, a file name, ~
                            or a function of the socket returning octets or ~
                            nil." value))))

(defun keylog-path ()
  (let ((f (or *ssl-keylog-file* (uiop:getenv "SSLKEYLOGFILE"))))
    (and f (plusp (length (namestring f))) (namestring f))))

;;;# Loading credentials

(defun load-certificate (ctx function cert)
  (if (octets-p cert)
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-use-certificate-chain-mem
                           ctx (simple-octets cert))
                      "cannot load the :certificate octets")
      (let ((path (path-string cert)))
        (check-ctx-call ctx (cl-async-ffi:tls-ctx-use-certificate-chain-file ctx path)
                        (format nil "~(~a~): cannot load the certificate chain ~a"
                                function path)))))

(defun load-key (ctx function key keytype password)
  (let ((type (keytype-code function keytype)))
    (if (octets-p key)
        (check-ctx-call ctx (cl-async-ffi:tls-ctx-use-private-key-mem
                             ctx (simple-octets key) type password)
                        "cannot load the :key octets")
        (let ((path (path-string key)))
          (check-ctx-call ctx (cl-async-ffi:tls-ctx-use-private-key-file
                               ctx path type password)
                          (format nil "~(~a~): cannot load the private key ~a"
                                  function path))))))

(defun load-credentials (ctx function certificate key keytype password)
  "Loads each certificate of CERTIFICATE (one, or a list: an RSA and an
ECDSA one, say) with the key of the same position in KEY (or, without
KEY, the key held in the certificate's own file or octets)."
  (let ((certs (source-list function :certificate certificate))
        (keys (and key (source-list function :key key))))
    (when (and keys (/= (length keys) (length certs)))
      (argument-error function :key
                      "~d key~:p for ~d certificate~:p: give one key per ~
                       certificate, in the same order (or no :key when each ~
                       certificate holds its key)."
                      (length keys) (length certs)))
    (loop :for cert :in certs
          :for k :in (or keys certs)
          :do (load-certificate ctx function cert)
              (load-key ctx function k keytype password))
    (when (= (length certs) 1)
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-check-private-key ctx)
                      (format nil "the key ~a does not match the certificate ~a"
                              (if (octets-p (first (or keys certs)))
                                  "(octets)" (path-string (first (or keys certs))))
                              (if (octets-p (first certs))
                                  "(octets)" (path-string (first certs))))))))

(defun load-pfx (ctx function pfx password)
  (check-source function :pfx pfx)
  (if (octets-p pfx)
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-use-pkcs12-mem
                           ctx (simple-octets pfx) password)
                      "cannot load the :pfx octets")
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-use-pkcs12-file
                           ctx (path-string pfx) password)
                      (format nil "cannot load the PKCS#12 file ~a"
                              (path-string pfx)))))

(defun load-trust (ctx function ca-file ca-path)
  (when ca-file
    (check-source function :ca-file ca-file))
  (when (and ca-path (not (file-name-p ca-path)))
    (argument-error function :ca-path "~s: give the name of a hashed ~
                                       directory of CA certificates." ca-path))
  (if (octets-p ca-file)
      (progn
        (check-ctx-call ctx (cl-async-ffi:tls-ctx-load-verify-mem
                             ctx (simple-octets ca-file))
                        "cannot load the :ca-file octets")
        (when ca-path
          (check-ctx-call ctx (cl-async-ffi:tls-ctx-load-verify-locations
                               ctx nil (path-string ca-path))
                          (format nil "cannot load trust anchors from ~a"
                                  (path-string ca-path)))))
      (when (or ca-file ca-path)
        (check-ctx-call ctx (cl-async-ffi:tls-ctx-load-verify-locations
                             ctx (path-string ca-file) (path-string ca-path))
                        (format nil "cannot load trust anchors from ~{~a~^ and ~}"
                                (remove nil (list (path-string ca-file)
                                                  (path-string ca-path))))))))

(defun load-crls (ctx function crl-file crl-check)
  (when crl-file
    (check-source function :crl-file crl-file)
    (if (octets-p crl-file)
        (check-ctx-call ctx (cl-async-ffi:tls-ctx-load-crl-mem
                             ctx (simple-octets crl-file))
                        "cannot load the :crl-file octets")
        (check-ctx-call ctx (cl-async-ffi:tls-ctx-load-crl-file
                             ctx (path-string crl-file))
                        (format nil "cannot load the CRLs of ~a"
                                (path-string crl-file)))))
  (when crl-check
    (unless crl-file
      (argument-error function :crl-check
                      "~s needs :crl-file, the CRLs to check against." crl-check))
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-crl-check
                         ctx (case crl-check
                               (:leaf cl-async-ffi:+crl-leaf+)
                               (:chain cl-async-ffi:+crl-chain+)
                               (t (argument-error
                                   function :crl-check
                                   "~s: use :leaf (the peer's certificate, the ~
                                    default) or :chain (every certificate of ~
                                    its chain)." crl-check))))
                    ":crl-check rejected")))

;;;# Configuring a context

(defun configure-context (ctx function &key server certificate key (keytype :pem)
                                         password pfx ca-file ca-path
                                         (verify t verify-p) verify-client
                                         (ciphers nil ciphers-p) ssl-options
                                         min-version max-version alpn crl-file
                                         crl-check pin-sha256 verify-callback
                                         ocsp ocsp-response ticket-keys)
  "Applies the keywords of MAKE-SSL-CONTEXT to the casl_tls_ctx CTX;
FUNCTION names the caller in messages."
  (let ((list (cond (ciphers-p ciphers)
                    (server (concatenate 'string *ssl-default-ciphers*
                                         *ssl-server-cipher-exclusions*))
                    (t *ssl-default-ciphers*))))
    (unless (stringp list)
      (argument-error function :ciphers "~s: give an OpenSSL cipher list ~
                                         string, such as \"ECDHE+AESGCM\"." list))
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-ciphers ctx list)
                    (format nil "cipher list ~s rejected" list)))
  (let ((bits (option-bits function ssl-options)))
    (unless (zerop bits)
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-options ctx bits)
                      ":ssl-options rejected")))
  (when (or min-version max-version)
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-versions
                         ctx (if min-version
                                 (version-code function min-version :min-version)
                                 #x0303)
                         (version-code function max-version :max-version))
                    "protocol versions rejected"))
  (when pfx
    (load-pfx ctx function pfx password))
  (when certificate
    (load-credentials ctx function certificate key keytype password))
  (when (and key (not certificate))
    (argument-error function :key "a :key needs its :certificate."))
  (let ((verifying (if server verify-client (if verify-p verify t))))
    (when (and verifying (not server))
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-load-system-trust ctx)
                      "cannot load the system trust store"))
    (load-trust ctx function ca-file ca-path)
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-verify
                         ctx (cond ((not verifying) 0)
                                   ((not server) 1)
                                   ((eq verify-client :optional) 1)
                                   ((member verify-client '(t :require)) 2)
                                   (t (argument-error
                                       function :verify-client
                                       "~s: use nil, :optional or :require."
                                       verify-client))))
                    "verification mode rejected"))
  (load-crls ctx function crl-file crl-check)
  (when pin-sha256
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-pins
                         ctx (pin-digests function pin-sha256))
                    ":pin-sha256 rejected"))
  (when verify-callback
    (unless (or (functionp verify-callback)
                (and (symbolp verify-callback) (fboundp verify-callback)))
      (argument-error function :verify-callback
                      "~s: give a function of (socket chain)." verify-callback))
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-peer-check ctx t)
                    ":verify-callback rejected"))
  (when ocsp
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-ocsp ctx (ocsp-mode function ocsp))
                    ":ocsp rejected"))
  (let ((der (and (not (functionp ocsp-response))
                  (ocsp-response-octets function ocsp-response))))
    (when der
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-ocsp-response ctx der)
                      ":ocsp-response rejected")))
  (when server
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-ticket-lifetime
                         ctx (max 1 (round *ssl-ticket-key-lifetime*)))
                    "*ssl-ticket-key-lifetime* rejected")
    (when ticket-keys
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-ticket-keys
                           ctx (ticket-key-list function ticket-keys))
                      ":ticket-keys rejected")))
  (when alpn
    (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-alpn ctx (alpn-wire function alpn))
                    ":alpn rejected"))
  (let ((keylog (keylog-path)))
    (when keylog
      (check-ctx-call ctx (cl-async-ffi:tls-ctx-set-keylog-file ctx keylog)
                      (format nil "cannot log keys to ~a" keylog))))
  ctx)

(defun check-context-keywords (function args server)
  "Signals an ARGUMENT-ERROR for a keyword of ARGS that a context of this
side (SERVER true: a server's) does not take."
  (loop :for (key nil) :on args :by #'cddr
        :do (cond ((and server (member key *client-only-keywords*))
                   (argument-error function key "~s is for clients only." key))
                  ((and (not server) (member key *server-only-keywords*))
                   (argument-error function key "~s is for servers only (~
                                                 :server t)." key)))))
