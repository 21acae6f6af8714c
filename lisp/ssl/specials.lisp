;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; specials.lisp --- the option constants (from the OpenSSL headers the
;;;; C library was built with) and the specials a user rebinds.

(in-package #:cl-async-ssl)

;;;# Option constants, from the OpenSSL headers the C library was built with

(defmacro define-ssl-constants (&rest pairs)
  `(progn
     ,@(loop :for (symbol name) :on pairs :by #'cddr
             :collect `(defconstant ,symbol
                         (or (cl-async-ffi:tls-constant ,name) 0)
                         ,(format nil "OpenSSL's ~a." name)))))

(define-ssl-constants
  +ssl-op-all+ "SSL_OP_ALL"
  +ssl-op-no-query-mtu+ "SSL_OP_NO_QUERY_MTU"
  +ssl-op-cookie-exchange+ "SSL_OP_COOKIE_EXCHANGE"
  +ssl-op-no-ticket+ "SSL_OP_NO_TICKET"
  +ssl-op-cisco-anyconnect+ "SSL_OP_CISCO_ANYCONNECT"
  +ssl-op-no-session-resumption-on-renegotiation+
  "SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION"
  +ssl-op-no-compression+ "SSL_OP_NO_COMPRESSION"
  +ssl-op-allow-unsafe-legacy-renegotiation+
  "SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION"
  +ssl-op-single-ecdh-use+ "SSL_OP_SINGLE_ECDH_USE"
  +ssl-op-single-dh-use+ "SSL_OP_SINGLE_DH_USE"
  +ssl-op-ephemeral-rsa+ "SSL_OP_EPHEMERAL_RSA"
  +ssl-op-cipher-server-preference+ "SSL_OP_CIPHER_SERVER_PREFERENCE"
  +ssl-op-tls-rollback-bug+ "SSL_OP_TLS_ROLLBACK_BUG"
  +ssl-op-no-sslv2+ "SSL_OP_NO_SSLv2"
  +ssl-op-no-sslv3+ "SSL_OP_NO_SSLv3"
  +ssl-op-no-tlsv1+ "SSL_OP_NO_TLSv1"
  +ssl-op-no-tlsv1-1+ "SSL_OP_NO_TLSv1_1"
  +ssl-op-no-tlsv1-2+ "SSL_OP_NO_TLSv1_2"
  +ssl-op-no-tlsv1-3+ "SSL_OP_NO_TLSv1_3"
  +ssl-op-no-renegotiation+ "SSL_OP_NO_RENEGOTIATION"
  +ssl-verify-none+ "SSL_VERIFY_NONE"
  +ssl-verify-peer+ "SSL_VERIFY_PEER"
  +ssl-verify-fail-if-no-peer-cert+ "SSL_VERIFY_FAIL_IF_NO_PEER_CERT"
  +ssl-verify-client-once+ "SSL_VERIFY_CLIENT_ONCE")

;;;# Specials

(defvar *ssl-verify-default* t
  "The default of TCP-SSL-CONNECT's :verify.  T: the server's certificate
chain is verified against the system trust store (plus :ca-file/:ca-path)
and its name against the host.  Bind it to nil to get the original
cl-async-ssl's unverified connections for old code.")

(defvar *ssl-default-ciphers*
  "HIGH:!RC4:!MD5:!aNULL:!EDH:!EXP:+ECDHE-RSA-AES128-SHA256:+3DES"
  "The TLS 1.2 cipher list used when :ciphers is not given (TLS 1.3 suites
are OpenSSL's defaults).")

(defvar *ssl-server-cipher-exclusions* ":!kRSA:!SHA1:!SHA256:!SHA384"
  "Appended to *ssl-default-ciphers* on servers that are not given
:ciphers: no TLS 1.2 key exchange without forward secrecy (kRSA) and no CBC
modes (LUCKY13), so a default server offers only ECDHE with AES-GCM,
ChaCha20-Poly1305, AES-CCM or ARIA-GCM.  Bind it to \"\" for the seed's
list unchanged.")

(defvar *ssl-handshake-timeout* 30
  "Seconds a TLS handshake may take before the connection is closed with a
TCP-TIMEOUT (the default of :handshake-timeout; nil: no limit).")

(defvar *ssl-ticket-key-lifetime* 3600
  "Seconds a server's own session-ticket key issues tickets before a new
random key replaces it (the previous one is still accepted for as long,
so tickets stay usable across one rotation).  Read when a server context is
made; servers given :ticket-keys use those instead.")

(defvar *ssl-keylog-file* nil
  "A file to append NSS key log lines to, so Wireshark can decrypt captured
traffic (nil: the SSLKEYLOGFILE environment variable, if set).  Debugging
only: anyone who reads the file can decrypt the sessions.")
