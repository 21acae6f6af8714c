;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; package.lisp --- the package of the bindings to libcl-async-ssl.so.
;;;;
;;;; lisp/ffi/ holds the only files that speak CFFI, in load order:
;;;;
;;;;   package     this package
;;;;   library     loading the library, DEFC, error codes, versions, libc
;;;;   callbacks   the callbacks C calls with events, *EVENT-HANDLERS*
;;;;   loop        the loop, timers, notifiers, DNS
;;;;   tcp         TCP connections and servers, pipes (unix sockets)
;;;;   process     signal watchers, child processes
;;;;   fs          descriptor pollers, filesystem watchers and requests
;;;;   tls         TLS contexts and connection queries
;;;;
;;;; lisp/ffi/upstream-util.lisp, loaded after lisp/util.lisp, defines
;;;; upstream cl-async-util's CFFI helpers (define-c-callback,
;;;; with-foreign-object*, socket addresses, ...) in that package.
;;;;
;;;; The C library owns every handle.  Lisp gives each handle an integer id
;;;; when it creates it; C passes the id back in every event.

(defpackage #:cl-async-ffi
  (:use #:cl)
  (:documentation "Bindings to libcl-async-ssl.so.  Functions return 0 or a
negative error code (or a pointer and a code); the layers above turn codes
into conditions.  Nothing outside lisp/ffi/ touches CFFI.")
  (:export
   ;; library
   #:ensure-library #:library-version #:libuv-version #:openssl-version
   #:strerror #:err-name #:null-pointer-p #:null-pointer #:pointer-address
   #:+eof+ #:+etls+ #:+everify+ #:+etruncated+ #:+econfig+ #:+eclosed+
   #:+einval+ #:+enomem+ #:+estate+ #:+uv-einval+
   ;; event dispatch
   #:event-handlers #:make-event-handlers #:*event-handlers*
   #:copy-foreign-octets #:foreign-octets
   ;; loop
   #:loop-new #:loop-run-once #:+run-done+ #:+run-more+ #:+run-stopped+
   #:loop-stop #:loop-free #:loop-alive-p #:loop-now
   #:loop-stats #:loop-describe #:handle-ref #:handle-close
   ;; timers, notifiers, dns
   #:timer-new #:timer-start #:timer-stop #:timer-close
   #:notifier-new #:notifier-send #:notifier-close
   #:dns-lookup #:dns-reverse
   ;; tcp
   #:tcp-connect #:server-listen #:server-open-fd #:server-port
   #:+listen-reuseport+
   #:server-set-tls #:server-close
   #:tcp-write #:tcp-write-queue-size #:tcp-read-stop #:tcp-read-start
   #:tcp-set-timeouts #:tcp-close #:tcp-error-text #:tcp-peer-address
   #:tcp-local-address #:tcp-fd #:tcp-connected-p #:tcp-start-tls #:tcp-tls
   #:tcp-sni-select
   #:+write-now+ #:+write-notify+
   ;; pipes
   #:pipe-connect #:pipe-listen #:pipe-open-fd
   ;; signals and processes
   #:signal-new #:signal-close #:signal-number
   #:process-spawn #:process-kill #:process-pid
   #:+stdio-ignore+ #:+stdio-inherit+ #:+stdio-pipe+ #:+stdio-file+
   ;; pollers, filesystem watchers and requests
   #:poll-new #:poll-close #:+poll-readable+ #:+poll-writable+
   #:+poll-disconnect+ #:fd-set-nonblocking #:fd-connected
   #:fs-event-new #:fs-event-stop #:fs-event-close #:+fs-rename+ #:+fs-change+
   #:fs-mkdtemp
   ;; tls contexts
   #:tls-ctx-new #:tls-ctx-adopt #:tls-ctx-ref #:tls-ctx-unref
   #:tls-ctx-ssl-ctx #:tls-ctx-error #:tls-ctx-set-options
   #:tls-ctx-clear-options #:tls-ctx-get-options #:tls-ctx-set-ciphers
   #:tls-ctx-set-ciphersuites #:tls-ctx-set-versions
   #:tls-ctx-use-certificate-chain-file #:tls-ctx-use-certificate-chain-mem
   #:tls-ctx-use-private-key-file #:tls-ctx-use-private-key-mem
   #:tls-ctx-check-private-key #:tls-ctx-load-verify-locations
   #:tls-ctx-load-verify-mem #:tls-ctx-load-system-trust
   #:tls-ctx-set-verify #:tls-ctx-get-verify #:tls-ctx-set-alpn
   #:tls-ctx-add-sni #:tls-ctx-set-sni-ask #:tls-ctx-set-session-cache
   #:tls-ctx-set-keylog-file #:tls-constant #:tls-constant-names
   #:tls-live-count
   ;; tls connection queries
   #:tls-error #:tls-handshake-done-p #:tls-protocol #:tls-cipher #:tls-alpn
   #:tls-server-name #:tls-session-reused-p #:tls-verify-result
   #:tls-verify-string #:tls-peer-cert #:tls-peer-chain #:tls-ocsp-response
   #:tcp-peer-checked #:tls-set-ocsp-response #:+etlseof+
   ;; production TLS settings
   #:tls-ctx-use-pkcs12-file #:tls-ctx-use-pkcs12-mem #:tls-ctx-load-crl-file
   #:tls-ctx-load-crl-mem #:tls-ctx-set-crl-check #:tls-ctx-set-pins
   #:tls-ctx-set-peer-check #:tls-ctx-set-ticket-keys
   #:tls-ctx-set-ticket-lifetime #:tls-ctx-copy-ticket-keys
   #:tls-ctx-set-ocsp-response #:tls-ctx-set-ocsp
   #:+crl-none+ #:+crl-leaf+ #:+crl-chain+ #:+ocsp-off+ #:+ocsp-ask+
   #:+ocsp-require+ #:+ticket-key-length+))
