;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; tls.lisp --- TLS contexts (configuration, certificates, trust,
;;;; ALPN, SNI, sessions, key log, option constants) and the queries of a
;;;; connection's TLS filter.  Bound here, in the cl-async system, so one
;;;; C library and one FFI package serve cl-async and cl-async-ssl.

(in-package #:cl-async-ffi)

;;;# TLS contexts

(defc %tls-ctx-new "casl_tls_ctx_new" :int (out :pointer) (server :boolean))
(defc %tls-ctx-adopt "casl_tls_ctx_adopt" :int
  (out :pointer) (ssl-ctx :pointer) (server :boolean))
(defc tls-ctx-ref "casl_tls_ctx_ref" :void (ctx :pointer))
(defc tls-ctx-unref "casl_tls_ctx_unref" :void (ctx :pointer))
(defc tls-ctx-ssl-ctx "casl_tls_ctx_ssl_ctx" :pointer (ctx :pointer))
(defc tls-ctx-error "casl_tls_ctx_error" :string (ctx :pointer))
(defc tls-ctx-set-options "casl_tls_ctx_set_options" :int
  (ctx :pointer) (options :uint64))
(defc tls-ctx-clear-options "casl_tls_ctx_clear_options" :int
  (ctx :pointer) (options :uint64))
(defc tls-ctx-get-options "casl_tls_ctx_get_options" :uint64 (ctx :pointer))
(defc tls-ctx-set-ciphers "casl_tls_ctx_set_ciphers" :int
  (ctx :pointer) (list nullable-string))
(defc tls-ctx-set-ciphersuites "casl_tls_ctx_set_ciphersuites" :int
  (ctx :pointer) (suites nullable-string))
(defc tls-ctx-set-versions "casl_tls_ctx_set_versions" :int
  (ctx :pointer) (min :int) (max :int))
(defc tls-ctx-use-certificate-chain-file
    "casl_tls_ctx_use_certificate_chain_file" :int
  (ctx :pointer) (path nullable-string))
(defc %tls-ctx-use-certificate-chain-mem
    "casl_tls_ctx_use_certificate_chain_mem" :int
  (ctx :pointer) (pem :pointer) (len :size))
(defc tls-ctx-use-private-key-file "casl_tls_ctx_use_private_key_file" :int
  (ctx :pointer) (path nullable-string) (type :int) (password nullable-string))
(defc %tls-ctx-use-private-key-mem "casl_tls_ctx_use_private_key_mem" :int
  (ctx :pointer) (data :pointer) (len :size) (type :int) (password nullable-string))
(defc tls-ctx-check-private-key "casl_tls_ctx_check_private_key" :int
  (ctx :pointer))
(defc tls-ctx-load-verify-locations "casl_tls_ctx_load_verify_locations" :int
  (ctx :pointer) (file nullable-string) (dir nullable-string))
(defc %tls-ctx-load-verify-mem "casl_tls_ctx_load_verify_mem" :int
  (ctx :pointer) (pem :pointer) (len :size))
(defc tls-ctx-load-system-trust "casl_tls_ctx_load_system_trust" :int
  (ctx :pointer))
(defc tls-ctx-set-verify "casl_tls_ctx_set_verify" :int
  (ctx :pointer) (mode :int))
(defc tls-ctx-get-verify "casl_tls_ctx_get_verify" :int (ctx :pointer))
(defc %tls-ctx-set-alpn "casl_tls_ctx_set_alpn" :int
  (ctx :pointer) (wire :pointer) (len :size))
(defc tls-ctx-add-sni "casl_tls_ctx_add_sni" :int
  (ctx :pointer) (pattern nullable-string) (child :pointer))
(defc tls-ctx-set-sni-ask "casl_tls_ctx_set_sni_ask" :int
  (ctx :pointer) (mode :int))
(defc tls-ctx-set-session-cache "casl_tls_ctx_set_session_cache" :int
  (ctx :pointer) (max :int))
(defc tls-ctx-set-keylog-file "casl_tls_ctx_set_keylog_file" :int
  (ctx :pointer) (path nullable-string))
(defc %tls-constant "casl_tls_constant" :int (name nullable-string) (out :pointer))
(defc %tls-constant-names "casl_tls_constant_names" :pointer)
(defc tls-live-count "casl_tls_live_count" :long)

(defun tls-ctx-new (server)
  "A context with secure defaults: (values pointer code)."
  (with-out-pointer (out) (%tls-ctx-new out server)))

(defun tls-ctx-adopt (ssl-ctx server)
  "Wraps the foreign SSL_CTX* SSL-CTX: (values pointer code)."
  (with-out-pointer (out) (%tls-ctx-adopt out ssl-ctx server)))

(defmacro with-octets-pointer ((var len octets) &body body)
  `(let ((.octets. ,octets))
     (declare (type (simple-array (unsigned-byte 8) (*)) .octets.))
     (let ((,len (length .octets.)))
       (cffi:with-pointer-to-vector-data (,var .octets.)
         ,@body))))

(defun tls-ctx-use-certificate-chain-mem (ctx octets)
  "Loads a PEM chain from OCTETS."
  (with-octets-pointer (p n octets)
    (%tls-ctx-use-certificate-chain-mem ctx p n)))

(defun tls-ctx-use-private-key-mem (ctx octets type password)
  "Loads a key (TYPE 1 PEM, 2 DER) from OCTETS."
  (with-octets-pointer (p n octets)
    (%tls-ctx-use-private-key-mem ctx p n type password)))

(defun tls-ctx-load-verify-mem (ctx octets)
  "Adds the PEM certificates in OCTETS as trust anchors."
  (with-octets-pointer (p n octets)
    (%tls-ctx-load-verify-mem ctx p n)))

(defun tls-ctx-set-alpn (ctx wire)
  "Sets the ALPN list from its wire encoding (an octet vector)."
  (with-octets-pointer (p n wire)
    (%tls-ctx-set-alpn ctx p n)))

(defun tls-constant (name)
  "The value of the OpenSSL constant NAME, or nil if the library does not
know it."
  (cffi:with-foreign-object (out :uint64)
    (if (zerop (%tls-constant name out))
        (cffi:mem-ref out :uint64)
        nil)))

(defun tls-constant-names ()
  "Every name TLS-CONSTANT knows."
  (loop :with names := (%tls-constant-names)
        :for i :from 0
        :for p := (cffi:mem-aref names :pointer i)
        :until (cffi:null-pointer-p p)
        :collect (cffi:foreign-string-to-lisp p)))

;;;# TLS connection queries

(defc tls-error "casl_tls_error" :string (tls :pointer))
(defc %tls-handshake-done "casl_tls_handshake_done" :int (tls :pointer))
(defc tls-protocol "casl_tls_protocol" :string (tls :pointer))
(defc tls-cipher "casl_tls_cipher" :string (tls :pointer))
(defc tls-alpn "casl_tls_alpn" :string (tls :pointer))
(defc tls-server-name "casl_tls_server_name" :string (tls :pointer))
(defc %tls-session-reused "casl_tls_session_reused" :int (tls :pointer))
(defc tls-verify-result "casl_tls_verify_result" :long (tls :pointer))
(defc tls-verify-string "casl_tls_verify_string" :string (tls :pointer))

(defun tls-handshake-done-p (tls)
  "True once TLS has completed its handshake."
  (/= 0 (%tls-handshake-done tls)))

(defun tls-session-reused-p (tls)
  "True if TLS resumed a session."
  (/= 0 (%tls-session-reused tls)))

(cffi:defcstruct casl-cert-info
  (subject :string) (issuer :string) (sans :string)
  (not-before :int64) (not-after :int64)
  (serial :string) (sha256 :string) (pem :string))

(defc %tls-peer-cert "casl_tls_peer_cert" :int (tls :pointer) (out :pointer))

(defun cert-info-plist (info)
  (cffi:with-foreign-slots ((subject issuer sans not-before not-after
                                     serial sha256 pem)
                            info (:struct casl-cert-info))
    (list :subject subject :issuer issuer :sans sans
          :not-before not-before :not-after not-after
          :serial serial :sha256 sha256 :pem pem)))

(defun tls-peer-cert (tls)
  "The peer certificate as a plist of raw fields (times as Unix times, SANs
one per line), or nil."
  (cffi:with-foreign-object (out :pointer)
    (when (zerop (%tls-peer-cert tls out))
      (cert-info-plist (cffi:mem-ref out :pointer)))))

(defc %tls-peer-chain "casl_tls_peer_chain" :int
  (tls :pointer) (out :pointer) (n :pointer))

(defun tls-peer-chain (tls)
  "The peer's chain, leaf first (the verified chain when it was
verified), as a list of plists like TLS-PEER-CERT's, or nil."
  (cffi:with-foreign-objects ((out :pointer) (n :size))
    (when (zerop (%tls-peer-chain tls out n))
      (loop :with array := (cffi:mem-ref out :pointer)
            :for i :below (cffi:mem-ref n :size)
            :collect (cert-info-plist
                      (cffi:mem-aptr array '(:struct casl-cert-info) i))))))

(defc %tls-ocsp-response "casl_tls_ocsp_response" :pointer
  (tls :pointer) (len :pointer))

(defun tls-ocsp-response (tls)
  "The OCSP response the server stapled (an octet vector), or nil."
  (cffi:with-foreign-object (len :size)
    (let ((p (%tls-ocsp-response tls len)))
      (unless (cffi:null-pointer-p p)
        (let ((octets (make-array (cffi:mem-ref len :size)
                                  :element-type '(unsigned-byte 8))))
          (cffi:with-pointer-to-vector-data (dst octets)
            (%memcpy dst p (length octets)))
          octets)))))

(defc %tls-peer-checked "casl_tls_peer_checked" :int
  (tls :pointer) (reason nullable-string))
(defc tcp-peer-checked "casl_tcp_peer_checked" :int
  (conn :pointer) (reason nullable-string))
(defc %tls-set-ocsp-response "casl_tls_set_ocsp_response" :int
  (tls :pointer) (der :pointer) (len :size))

(defun tls-set-ocsp-response (tls octets)
  "Staples OCSP-response OCTETS on this server connection (nil: none)."
  (let ((octets (or octets (make-array 0 :element-type '(unsigned-byte 8)))))
    (with-octets-pointer (p n octets)
      (%tls-set-ocsp-response tls p n))))

;;;# Production TLS settings of contexts

(defconstant +crl-none+ 0 "CASL_CRL_NONE.")
(defconstant +crl-leaf+ 1 "CASL_CRL_LEAF.")
(defconstant +crl-chain+ 2 "CASL_CRL_CHAIN.")
(defconstant +ocsp-off+ 0 "CASL_OCSP_OFF.")
(defconstant +ocsp-ask+ 1 "CASL_OCSP_ASK.")
(defconstant +ocsp-require+ 2 "CASL_OCSP_REQUIRE.")
(defconstant +ticket-key-length+ 80 "CASL_TICKET_KEY_LEN.")

(defc tls-ctx-use-pkcs12-file "casl_tls_ctx_use_pkcs12_file" :int
  (ctx :pointer) (path nullable-string) (password nullable-string))
(defc %tls-ctx-use-pkcs12-mem "casl_tls_ctx_use_pkcs12_mem" :int
  (ctx :pointer) (data :pointer) (len :size) (password nullable-string))
(defc tls-ctx-load-crl-file "casl_tls_ctx_load_crl_file" :int
  (ctx :pointer) (path nullable-string))
(defc %tls-ctx-load-crl-mem "casl_tls_ctx_load_crl_mem" :int
  (ctx :pointer) (pem :pointer) (len :size))
(defc tls-ctx-set-crl-check "casl_tls_ctx_set_crl_check" :int
  (ctx :pointer) (mode :int))
(defc %tls-ctx-set-pins "casl_tls_ctx_set_pins" :int
  (ctx :pointer) (digests :pointer) (n :size))
(defc tls-ctx-set-peer-check "casl_tls_ctx_set_peer_check" :int
  (ctx :pointer) (on :boolean))
(defc %tls-ctx-set-ticket-keys "casl_tls_ctx_set_ticket_keys" :int
  (ctx :pointer) (keys :pointer) (n :size))
(defc tls-ctx-set-ticket-lifetime "casl_tls_ctx_set_ticket_lifetime" :int
  (ctx :pointer) (seconds :uint64))
(defc tls-ctx-copy-ticket-keys "casl_tls_ctx_copy_ticket_keys" :int
  (dst :pointer) (src :pointer))
(defc %tls-ctx-set-ocsp-response "casl_tls_ctx_set_ocsp_response" :int
  (ctx :pointer) (der :pointer) (len :size))
(defc tls-ctx-set-ocsp "casl_tls_ctx_set_ocsp" :int (ctx :pointer) (mode :int))

(defun tls-ctx-use-pkcs12-mem (ctx octets password)
  "Loads a certificate, its chain and key from PKCS#12 OCTETS."
  (with-octets-pointer (p n octets)
    (%tls-ctx-use-pkcs12-mem ctx p n password)))

(defun tls-ctx-load-crl-mem (ctx octets)
  "Adds the PEM CRLs in OCTETS."
  (with-octets-pointer (p n octets)
    (%tls-ctx-load-crl-mem ctx p n)))

(defun tls-ctx-set-pins (ctx digests)
  "Pins the SHA-256 digests (32-byte octet vectors) of SPKIs."
  (let ((all (make-array (* 32 (length digests)) :element-type '(unsigned-byte 8))))
    (loop :for d :in digests :for i :from 0
          :do (replace all d :start1 (* 32 i)))
    (with-octets-pointer (p n all)
      (%tls-ctx-set-pins ctx p (floor n 32)))))

(defun tls-ctx-set-ticket-keys (ctx keys)
  "Sets the session-ticket keys: a list of 80-byte octet vectors (nil: the
context's own random keys)."
  (let ((all (make-array (* +ticket-key-length+ (length keys))
                         :element-type '(unsigned-byte 8))))
    (loop :for k :in keys :for i :from 0
          :do (replace all k :start1 (* +ticket-key-length+ i)))
    (with-octets-pointer (p n all)
      (prog1 (%tls-ctx-set-ticket-keys ctx p (floor n +ticket-key-length+))
        (fill all 0)))))

(defun tls-ctx-set-ocsp-response (ctx octets)
  "The OCSP response (octets, or nil) a server staples."
  (let ((octets (or octets (make-array 0 :element-type '(unsigned-byte 8)))))
    (with-octets-pointer (p n octets)
      (%tls-ctx-set-ocsp-response ctx p n))))
