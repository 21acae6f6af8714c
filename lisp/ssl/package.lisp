;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; package.lisp --- the package of the system cl-async-ssl: TLS over the
;;;; cl-async core.
;;;;
;;;; lisp/ssl/ holds its files, in load order:
;;;;
;;;;   package      this package
;;;;   conditions   tcp-ssl-error and its subclasses; failures of context calls
;;;;   specials     the +ssl-op-*+ / +ssl-verify-*+ constants and the specials
;;;;   config       checking the keywords of contexts, configuring one
;;;;   context      ssl-context: making, adopting, caching, choosing one
;;;;   socket       ssl-socket: its conditions, its life, its queries
;;;;   client       tcp-ssl-connect
;;;;   server       tcp-ssl-server and SNI
;;;;   start-tls    upgrading a plain TCP socket in place (STARTTLS)
;;;;
;;;; It uses only exported symbols of the core's packages (cl-async,
;;;; cl-async-ext, cl-async-util, cl-async-base, cl-async-ffi).

(defpackage #:cl-async-ssl
  (:use #:cl #:cl-async-base #:cl-async-util #:cl-async #:cl-async-ext)
  (:nicknames #:as-ssl)
  (:shadowing-import-from #:cl-async #:exit-event-loop)
  (:documentation "TLS over cl-async TCP: ssl-socket, tcp-ssl-connect,
tcp-ssl-server, reusable contexts, and secure defaults.")
  (:export
   ;; sockets and servers
   #:ssl-socket #:tcp-ssl-connect #:tcp-ssl-server #:start-tls
   #:reload-ssl-server #:tcp-ssl-server-ticket-keys
   ;; contexts
   #:ssl-context #:make-ssl-context #:free-ssl-context #:ssl-context-pointer
   #:*ssl-verify-default* #:*ssl-default-ciphers*
   #:*ssl-server-cipher-exclusions* #:*ssl-keylog-file*
   #:*ssl-handshake-timeout* #:*ssl-ticket-key-lifetime*
   ;; connection details
   #:ssl-socket-protocol #:ssl-socket-cipher #:ssl-socket-alpn
   #:ssl-socket-server-name #:ssl-socket-session-reused-p
   #:ssl-socket-peer-certificate #:ssl-socket-peer-certificate-chain
   #:ssl-socket-ocsp-response
   ;; conditions
   #:tcp-ssl-error #:tcp-ssl-error-reason #:tcp-ssl-verify-error
   #:tcp-ssl-verify-code #:tcp-ssl-verify-message #:tcp-ssl-truncated
   #:tcp-ssl-handshake-eof
   ;; option constants (values from the OpenSSL headers the C library uses)
   #:+ssl-op-all+
   #:+ssl-op-no-query-mtu+
   #:+ssl-op-cookie-exchange+
   #:+ssl-op-no-ticket+
   #:+ssl-op-cisco-anyconnect+
   #:+ssl-op-no-session-resumption-on-renegotiation+
   #:+ssl-op-no-compression+
   #:+ssl-op-allow-unsafe-legacy-renegotiation+
   #:+ssl-op-single-ecdh-use+
   #:+ssl-op-single-dh-use+
   #:+ssl-op-ephemeral-rsa+
   #:+ssl-op-cipher-server-preference+
   #:+ssl-op-tls-rollback-bug+
   #:+ssl-op-no-sslv2+
   #:+ssl-op-no-sslv3+
   #:+ssl-op-no-tlsv1+
   #:+ssl-op-no-tlsv1-2+
   #:+ssl-op-no-tlsv1-1+
   #:+ssl-op-no-tlsv1-3+
   #:+ssl-op-no-renegotiation+
   #:+ssl-verify-none+
   #:+ssl-verify-peer+
   #:+ssl-verify-fail-if-no-peer-cert+
   #:+ssl-verify-client-once+))
