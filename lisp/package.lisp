;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; package.lisp --- the packages of the cl-async core (the system
;;;; cl-async), one per layer.
;;;;
;;;;   cl-async-ffi   the C library: lisp/ffi/package.lisp (lisp/ffi/ holds the
;;;;                  only files that use CFFI)
;;;;   cl-async-base  upstream's base package: the event-base and specials
;;;;   cl-async-util  upstream's utility package: octets, error handling
;;;;   cl-async-ext   the extension protocol the TLS layer builds on (used
;;;;                  by cl-async, which defines it)
;;;;   cl-async / as  the user API: loop, timers, notifiers, DNS, TCP, streams
;;;;
;;;; TLS is the system cl-async-ssl, loaded on top of this one: its package
;;;; cl-async-ssl / as-ssl is in lisp/ssl/package.lisp.

(defpackage #:cl-async-base
  (:use #:cl)
  (:documentation "The event-base object, the conditions every event shares,
and the specials of cl-async (upstream's cl-async-base).")
  (:export #:event-info
           #:event-error
           #:event-errcode
           #:event-errmsg

           #:*event-base*
           #:*event-base-next-id*
           #:*enable-threading*
           #:event-base
           #:event-base-c
           #:event-base-id
           #:event-base-function-registry
           #:event-base-data-registry
           #:event-base-exit-functions
           #:event-base-signal-handlers
           #:event-base-dns-base
           #:event-base-dns-ref-count
           #:event-base-catch-app-errors
           #:event-base-send-errors-to-eventcb
           #:event-base-lock
           #:event-base-num-connections-in
           #:event-base-num-connections-out

           #:*buffer-writes*
           #:*buffer-size*
           #:*output-buffer*
           #:*input-buffer*
           #:*data-registry*
           #:*function-registry*
           #:*safe-sldb-quit-restart*))

(defpackage #:cl-async-util
  (:use #:cl #:cl-async-base)
  (:documentation "Octet types, address parsing, the callback error
handling of cl-async, and upstream's registry helpers.")
  (:export #:octet
           #:octet-vector
           #:bytes-or-string
           #:callback
           #:bytes
           #:make-buffer
           #:buffer-output
           #:write-to-buffer
           #:do-chunk-data
           #:+af-inet+
           #:+af-inet6+
           #:+af-unspec+
           #:+af-unix+
           #:*passthrough-errors*
           #:passthrough-error-p
           #:handle-error
           #:abort-callback
           #:exit-event-loop
           #:continue-event-loop
           #:call-with-callback-restarts
           #:catch-app-errors
           #:run-event-cb
           #:with-lock
           #:make-pointer-eql-able
           #:create-data-pointer
           #:save-callbacks
           #:get-callbacks
           #:clear-callbacks
           #:attach-data-to-pointer
           #:deref-data-from-pointer
           #:clear-pointer-data
           #:free-pointer-data
           #:append-array
           #:ipv4-address-p
           #:ipv6-address-p
           #:ip-address-p
           #:define-condition-alias
           ;; upstream's helpers for code that calls libuv through CFFI
           ;; (defined in lisp/ffi/upstream-util.lisp)
           #:define-c-callback
           #:with-foreign-object*
           #:error-str
           #:ip-str-to-sockaddr
           #:with-ip-to-sockaddr
           #:addrinfo-to-string
           #:set-socket-nonblocking
           #:fd-connected-p
           #:+sockaddr-size+
           #:+sockaddr6-size+
           #:+addrinfo-size+
           #:with-struct-timeval
           #:split-usec-time
           #:*ipv4-scanner*
           #:*ipv6-scanner*
           ;; upstream internals, exported so code using them reads
           #:*send-errors-to-eventcb* #:send-to-eventcb
           ;; SWANK's quit restart, resolved once per loop
           #:*sldb-quit-symbol* #:find-sldb-quit-symbol))

(defpackage #:cl-async-ext
  (:use #:cl)
  (:documentation "The extension protocol of the cl-async core: the
generic functions and helpers a transport layer such as cl-async-ssl builds
on, beyond the user API.  The core (package cl-async) uses this package and
defines everything it exports.")
  (:export
   ;; generic functions a socket or server class specialises
   #:socket-attached #:socket-accepted #:server-attached #:server-socket-class
   #:accept-connects-p #:object-connected #:object-closed
   #:object-loop-closed #:object-error #:object-sni
   ;; helpers
   #:make-server #:check-event-loop-running #:register-error-code
   #:socket-error-condition #:socket-label #:deliver-socket-event
   #:socket-server-c #:socket-host #:socket-port #:socket-connected
   #:socket-direction #:socket-connect-cb #:socket-event-cb
   #:socket-server-event-cb #:socket-server-closed #:timeout-ms #:split-event-cb
   #:check-keywords #:loop-exiting))

(defpackage #:cl-async
  (:use #:cl #:cl-async-base #:cl-async-util #:cl-async-ext)
  (:nicknames #:as)
  (:shadow #:exit-event-loop)
  (:documentation "Asynchronous TCP for Common Lisp on libuv: the event loop,
timers, notifiers, DNS, TCP sockets and servers, and async streams, with
the API of the original cl-async.")
  (:export
   ;; types and specials
   #:octet #:octet-vector #:bytes
   #:+af-inet+ #:+af-inet6+ #:+af-unspec+ #:+af-unix+
   #:*buffer-writes* #:*buffer-size*
   #:handle-error
   ;; conditions shared by every event
   #:event-info #:event-error #:event-errcode #:event-errmsg
   ;; event loop
   #:stats #:dump-event-loop-status #:add-event-loop-exit-callback
   #:*interrupt-latency-ms*
   #:ref #:unref #:start-event-loop #:with-event-loop #:exit-event-loop
   ;; timers ("events")
   #:event-freed #:event #:event-c #:event-freed-p #:free-event
   #:remove-event #:add-event #:delay #:with-delay #:interval
   #:with-interval #:remove-interval #:make-event
   ;; notifiers
   #:notifier #:notifier-freed-p #:free-notifier #:make-notifier
   #:trigger-notifier
   ;; DNS
   #:dns-error #:dns-lookup
   ;; streamish conditions and functions
   #:streamish #:close-streamish #:streamish-info #:streamish-error
   #:streamish-eof #:streamish-broken-pipe #:streamish-canceled
   #:streamish-enoent #:streamish-closed #:check-streamish-open
   #:streamish-closed-p #:streamish-write
   ;; socket conditions
   #:socket-info #:socket-error #:socket-eof #:socket-reset
   #:socket-timeout #:socket-refused #:socket-aborted
   #:socket-address-in-use #:socket-accept-error
   #:socket-accept-error-listener #:socket-accept-error-server
   #:socket-accept-error-tcp-server #:socket-closed
   #:tcp-info #:tcp-error #:tcp-eof #:tcp-reset #:tcp-timeout #:tcp-refused
   #:tcp-accept-error #:tcp-server-bind-error
   ;; sockets and servers
   #:socket #:socket-c #:socket-data #:socket-socket #:tcp-socket
   #:socket-server #:tcp-server
   #:socket-closed-p #:close-socket #:close-socket-server #:close-tcp-server
   #:write-socket-data #:set-socket-timeouts #:enable-socket
   #:disable-socket #:init-tcp-socket #:connect-tcp-socket
   #:tcp-connect #:socket-address #:socket-write-queue-size
   #:socket-peer-address #:socket-local-address #:tcp-server-port
   ;; streams
   #:async-stream #:stream-socket #:async-input-stream
   #:async-output-stream #:async-io-stream
   #:*send-errors-to-eventcb*
   ;; bad arguments
   #:argument-error #:argument-error-function #:argument-error-argument
   ;; pipes (unix domain sockets)
   #:pipe #:pipe-server #:pipe-connect #:pipe-not-found
   ;; signal handlers
   #:signal-handler #:free-signal-handler #:clear-signal-handlers
   ;; signal numbers (this platform's)
   #:+sighup+ #:+sigint+ #:+sigquit+ #:+sigill+ #:+sigtrap+ #:+sigabrt+
   #:+sigemt+ #:+sigfpe+ #:+sigkill+ #:+sigbus+ #:+sigsegv+ #:+sigsys+
   #:+sigpipe+ #:+sigalrm+ #:+sigterm+ #:+sigurg+ #:+sigstop+ #:+sigtstp+
   #:+sigcont+ #:+sigchld+ #:+sigttin+ #:+sigttou+ #:+sigio+ #:+sigxcpu+
   #:+sigxfsz+ #:+sigvtalrm+ #:+sigprof+ #:+sigwinch+ #:+siginfo+
   #:+sigusr1+ #:+sigusr2+
   ;; processes
   #:process #:spawn #:process-input #:process-output #:process-error-output
   #:process-kill #:process-pid
   ;; idlers: a callback on every pass of the loop
   #:idler #:idle #:free-idler #:idler-freed-p
   ;; pollers
   #:poller #:poll #:free-poller #:poller-freed-p
   ;; filesystem
   #:mkdtemp #:filesystem-error #:filesystem-enoent #:filesystem-eacces
   #:filesystem-eperm
   ;; filesystem events
   #:fs-monitor #:fs-watch #:fs-unwatch #:fs-monitor-close
   ;; reverse DNS
   #:reverse-dns-lookup))
