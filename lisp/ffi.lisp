;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; ffi.lisp --- the only file that speaks CFFI: libcl-async-ssl.so.
;;;;
;;;; The C library owns every handle.  Lisp gives each handle an integer id
;;;; when it creates it; C passes the id back in every event.  Events are
;;;; dispatched by casl_loop_run outside uv_run, through the callbacks
;;;; below, which hand them to the functions in *EVENT-HANDLERS* (set by
;;;; the core).  Callback pointers are handed to C each time a loop is
;;;; created, so a saved image works after a restart.

(in-package #:cl-async-ffi)

;;;# Library

(cffi:define-foreign-library libcl-async-ssl
  (t (:default "libcl-async-ssl")))

(defun library-pathname ()
  "The C library to load: $CL_ASYNC_SSL_LIBRARY if set (another build, such
as the sanitizer build `make asan' uses), else the one the ASDF system
builds, c/libcl-async-ssl.so."
  (let ((override (uiop:getenv "CL_ASYNC_SSL_LIBRARY")))
    (if (and override (plusp (length override)))
        (pathname override)
        (asdf:system-relative-pathname :cl-async-ssl "c/libcl-async-ssl.so"))))

(defun ensure-library ()
  "Loads libcl-async-ssl.so (built by the ASDF system) unless it is loaded."
  (unless (cffi:foreign-library-loaded-p 'libcl-async-ssl)
    (let ((path (library-pathname)))
      (unless (probe-file path)
        (error "cl-async-ssl: the C library ~a is missing.  Load the ~
                system with (asdf:load-system :cl-async-ssl), which builds ~
                it, or run `make -C ~a`."
               (namestring path)
               (namestring (make-pathname :name nil :type nil
                                          :defaults path))))
      (cffi:load-foreign-library path))))

(ensure-library)

;;; Input strings: NIL is passed as NULL.
(cffi:define-foreign-type nullable-string-type ()
  ()
  (:actual-type :pointer)
  (:simple-parser nullable-string))

(defmethod cffi:translate-to-foreign (value (type nullable-string-type))
  (if value
      (cffi:foreign-string-alloc value :encoding :utf-8)
      (cffi:null-pointer)))

(defmethod cffi:free-translated-object (pointer (type nullable-string-type)
                                        param)
  (declare (ignore param))
  (unless (cffi:null-pointer-p pointer)
    (cffi:foreign-string-free pointer)))

;;; Asynchronous interrupts (^C, SIGTERM, INTERRUPT-THREAD, WITH-TIMEOUT)
;;; must never run inside C code: a handler that unwinds would leave a lock
;;; of malloc or OpenSSL held, or libuv half way through its poll.  So every
;;; call into the library defers them (they run as soon as the call
;;; returns), and the loop is driven one bounded iteration at a time (see
;;; LOOP-RUN-ONCE) so a pending interrupt waits at most RUN-ONCE's bound.
;;; Callbacks re-enable interrupts: a runaway callback can be interrupted,
;;; and unwinding from it is safe (only casl_loop_run_once's own frame, whose
;;; state casl_loop_free resets, is below it).

(defmacro defc (lisp-name c-name return-type &body args)
  "Declares the C function C-NAME as LISP-NAME, called with deferrable
interrupts deferred."
  (let ((raw (intern (format nil "%%RAW-~a" (symbol-name lisp-name))))
        (names (mapcar #'first args)))
    `(progn
       (cffi:defcfun (,c-name ,raw) ,return-type ,@args)
       (declaim (inline ,lisp-name))
       (defun ,lisp-name ,names
         ,(format nil "Calls ~a." c-name)
         (sb-sys:without-interrupts (,raw ,@names))))))

(defvar *callback-interrupts* nil
  "Whether callbacks may enable interrupts: the caller's
SB-SYS:*ALLOW-WITH-INTERRUPTS*, captured by LOOP-RUN-ONCE before it defers
interrupts.")

;;; Callbacks do all their work, allocation included, inside
;;; WITH-CALLBACK-INTERRUPTS.  Outside it they run with interrupts deferred
;;; and *ALLOW-WITH-INTERRUPTS* nil, a state in which SBCL's allocator may
;;; collect garbage safely; a collection triggered with interrupts deferred
;;; but allowed (the state ALLOW-WITH-INTERRUPTS would leave around the C
;;; call) lets a signal arrive during POST-GC, which SBCL 2.2 treats as a
;;; fatal error ("pending handler changed in gc").
(defmacro with-callback-interrupts (&body body)
  "Runs BODY (a callback from C) with interrupts enabled again, if the
code that ran the loop allowed them."
  `(let ((sb-sys:*allow-with-interrupts* *callback-interrupts*))
     (sb-sys:with-interrupts ,@body)))

;;;# Errors and versions

(defconstant +eof+ -4095 "libuv's UV_EOF.")
(defconstant +etls+ -30001 "CASL_ETLS: TLS protocol failure or alert.")
(defconstant +everify+ -30002 "CASL_EVERIFY: certificate verification failed.")
(defconstant +etruncated+ -30003 "CASL_ETRUNCATED: EOF without close_notify.")
(defconstant +econfig+ -30004 "CASL_ECONFIG: a TLS setting was rejected.")
(defconstant +enomem+ -30005 "CASL_ENOMEM.")
(defconstant +einval+ -30006 "CASL_EINVAL.")
(defconstant +eclosed+ -30007 "CASL_ECLOSED: the object is closed.")
(defconstant +estate+ -30008 "CASL_ESTATE: not allowed in this state.")

(defc strerror "casl_strerror" :string (code :int))
(defc err-name "casl_err_name" :string (code :int))
(defc library-version "casl_version" :string)
(defc libuv-version "casl_libuv_version" :string)
(defc openssl-version "casl_openssl_version" :string)

(defun null-pointer-p (pointer)
  "True if POINTER is a null foreign pointer."
  (cffi:null-pointer-p pointer))

(defun null-pointer ()
  "A null foreign pointer."
  (cffi:null-pointer))

(defun pointer-address (pointer)
  "The address of POINTER as an integer."
  (cffi:pointer-address pointer))

(cffi:defcfun ("memcpy" %memcpy) :pointer
  (dst :pointer) (src :pointer) (n :size))

;;;# libc

(cffi:defcfun ("mkdtemp" %mkdtemp) :pointer (template :pointer))

(defun make-temp-directory (template)
  "Creates a directory from TEMPLATE (ending in XXXXXX) with mkdtemp(3):
returns its name, or nil and the errno."
  (cffi:with-foreign-string (buf template)
    (let ((p (%mkdtemp buf)))
      (if (cffi:null-pointer-p p)
          (values nil (- (cffi:mem-ref (cffi:foreign-funcall "__errno_location" :pointer)
                                        :int)))
          (values (cffi:foreign-string-to-lisp buf) 0)))))

;;;# Event dispatch

(defstruct event-handlers
  "Functions the core installs to receive events (all called on the loop
thread, from casl_loop_run)."
  (timer nil :type (or null function))
  (notify nil :type (or null function))
  (closed nil :type (or null function))
  (accept nil :type (or null function))
  (connect nil :type (or null function))
  (read nil :type (or null function))
  (written nil :type (or null function))
  (error nil :type (or null function))
  (dns nil :type (or null function))
  (sni nil :type (or null function)))

(setf (documentation 'make-event-handlers 'function)
      "Makes the EVENT-HANDLERS the core installs in *EVENT-HANDLERS*, one
function per event kind (:timer :notify :closed :accept :connect :read
:written :error :dns :sni).")

(defvar *event-handlers* nil
  "The EVENT-HANDLERS that receive every event; set by the core at load.")

(declaim (type (or null event-handlers) *event-handlers*))

(cffi:defcallback %on-timer :void ((id :int64))
  (with-callback-interrupts
    (funcall (event-handlers-timer *event-handlers*) id)))

(cffi:defcallback %on-notify :void ((id :int64))
  (with-callback-interrupts
    (funcall (event-handlers-notify *event-handlers*) id)))

(cffi:defcallback %on-closed :void ((id :int64))
  (with-callback-interrupts
    (funcall (event-handlers-closed *event-handlers*) id)))

(cffi:defcallback %on-accept :int64 ((server-id :int64) (conn :pointer))
  (with-callback-interrupts
    (funcall (event-handlers-accept *event-handlers*) server-id conn)))

(cffi:defcallback %on-connect :void ((id :int64))
  (with-callback-interrupts
    (funcall (event-handlers-connect *event-handlers*) id)))

(cffi:defcallback %on-read :void ((id :int64) (buf :pointer) (len :size))
  (with-callback-interrupts
    (let ((octets (make-array len :element-type '(unsigned-byte 8))))
      (cffi:with-pointer-to-vector-data (dst octets)
        (%memcpy dst buf len))
      (funcall (event-handlers-read *event-handlers*) id octets))))

(cffi:defcallback %on-written :void ((id :int64))
  (with-callback-interrupts
    (funcall (event-handlers-written *event-handlers*) id)))

(cffi:defcallback %on-error :void ((id :int64) (code :int))
  (with-callback-interrupts
    (funcall (event-handlers-error *event-handlers*) id code)))

(cffi:defcallback %on-dns :void ((id :int64) (status :int) (n :int)
                                 (addrs :pointer) (families :pointer))
  (with-callback-interrupts
    (let ((results (loop :for i :below n
                         :collect (cons (cffi:mem-aref addrs :string i)
                                        (cffi:mem-aref families :int i)))))
      (funcall (event-handlers-dns *event-handlers*) id status results))))

(cffi:defcallback %on-sni :void ((id :int64) (name :pointer))
  (with-callback-interrupts
    (let ((name (cffi:foreign-string-to-lisp name)))
      (funcall (event-handlers-sni *event-handlers*) id
               (if (zerop (length name)) nil name)))))

(cffi:defcstruct casl-callbacks
  (timer :pointer) (notify :pointer) (closed :pointer) (accept :pointer)
  (connect :pointer) (read :pointer) (written :pointer) (error :pointer)
  (dns :pointer) (sni :pointer))

;;;# Loop

(defc %loop-new "casl_loop_new" :int (out :pointer) (cbs :pointer))
(cffi:defcfun ("casl_loop_run_once" %raw-loop-run-once) :int
  (loop :pointer) (max-wait-ms :uint64))

(defconstant +run-done+ 0 "CASL_RUN_DONE.")
(defconstant +run-more+ 1 "CASL_RUN_MORE.")
(defconstant +run-stopped+ 2 "CASL_RUN_STOPPED.")

(defun loop-run-once (loop max-wait-ms)
  "One iteration of LOOP, waiting at most MAX-WAIT-MS: +run-more+,
+run-done+, +run-stopped+ or a negative code.  Interrupts are deferred
while C runs and allowed again inside callbacks."
  (let ((*callback-interrupts* sb-sys:*allow-with-interrupts*))
    (sb-sys:without-interrupts
      (%raw-loop-run-once loop max-wait-ms))))
(defc loop-stop "casl_loop_stop" :void (loop :pointer))
(defc loop-free "casl_loop_free" :void (loop :pointer))
(defc %loop-alive "casl_loop_alive" :int (loop :pointer))
(defc loop-now "casl_loop_now" :uint64 (loop :pointer))
(defc %loop-describe "casl_loop_describe" :size
  (loop :pointer) (buf :pointer) (len :size))
(defc handle-ref "casl_handle_ref" :void (handle :pointer) (ref :boolean))
(defc handle-close "casl_handle_close" :void (handle :pointer))

(defun loop-new ()
  "Creates a loop wired to the callbacks above.  Returns the loop pointer
and 0, or nil and a negative code."
  (cffi:with-foreign-objects ((out :pointer) (cbs '(:struct casl-callbacks)))
    (macrolet ((set-cb (slot name)
                 `(setf (cffi:foreign-slot-value cbs '(:struct casl-callbacks)
                                                 ',slot)
                        (cffi:callback ,name))))
      (set-cb timer %on-timer) (set-cb notify %on-notify)
      (set-cb closed %on-closed) (set-cb accept %on-accept)
      (set-cb connect %on-connect) (set-cb read %on-read)
      (set-cb written %on-written) (set-cb error %on-error)
      (set-cb dns %on-dns) (set-cb sni %on-sni))
    (let ((rc (%loop-new out cbs)))
      (if (zerop rc)
          (values (cffi:mem-ref out :pointer) 0)
          (values nil rc)))))

(defun loop-alive-p (loop)
  "True while LOOP has active referenced handles or queued events."
  (/= 0 (%loop-alive loop)))

(cffi:defcstruct casl-stats
  (timers :int64) (notifiers :int64) (servers :int64)
  (connections-in :int64) (connections-out :int64) (tls :int64)
  (dns-queries :int64) (handles :int64) (queued-events :int64)
  (write-queue :int64))

(defc %loop-stats "casl_loop_stats" :void (loop :pointer) (out :pointer))

(defun loop-stats (loop)
  "The loop's counters as a plist (:timers :notifiers :servers
:connections-in :connections-out :tls :dns-queries :handles :queued-events
:write-queue)."
  (cffi:with-foreign-object (st '(:struct casl-stats))
    (%loop-stats loop st)
    (cffi:with-foreign-slots ((timers notifiers servers connections-in
                                      connections-out tls dns-queries handles
                                      queued-events write-queue)
                              st (:struct casl-stats))
      (list :timers timers :notifiers notifiers :servers servers
            :connections-in connections-in :connections-out connections-out
            :tls tls :dns-queries dns-queries :handles handles
            :queued-events queued-events :write-queue write-queue))))

(defun loop-describe (loop)
  "One line per open handle of LOOP."
  (let ((need (%loop-describe loop (cffi:null-pointer) 0)))
    (cffi:with-foreign-pointer-as-string (buf need)
      (%loop-describe loop buf need))))

;;;# Timers, notifiers, DNS

(defc %timer-new "casl_timer_new" :int (loop :pointer) (id :int64) (out :pointer))
(defc timer-start "casl_timer_start" :int
  (timer :pointer) (timeout-ms :uint64) (repeat-ms :uint64))
(defc timer-stop "casl_timer_stop" :int (timer :pointer))
(defc timer-close "casl_timer_close" :void (timer :pointer))
(defc %notifier-new "casl_notifier_new" :int
  (loop :pointer) (id :int64) (out :pointer))
(defc notifier-send "casl_notifier_send" :int (notifier :pointer))
(defc notifier-close "casl_notifier_close" :void (notifier :pointer))
(defc %dns-lookup "casl_dns_lookup" :int
  (loop :pointer) (id :int64) (host nullable-string) (family :int))

(defmacro with-out-pointer ((var) call)
  "Calls CALL with VAR bound to a pointer slot; returns the pointer stored
there and 0, or nil and the code."
  `(cffi:with-foreign-object (,var :pointer)
     (let ((rc ,call))
       (if (zerop rc)
           (values (cffi:mem-ref ,var :pointer) 0)
           (values nil rc)))))

(defun timer-new (loop id)
  "A stopped timer with ID: (values pointer code)."
  (with-out-pointer (out) (%timer-new loop id out)))

(defun notifier-new (loop id)
  "A notifier with ID: (values pointer code)."
  (with-out-pointer (out) (%notifier-new loop id out)))

(defun dns-lookup (loop id host family)
  "Starts resolving HOST (FAMILY 0, 4 or 6); the dns event carries ID."
  (%dns-lookup loop id host family))

;;;# TCP

(defconstant +write-now+ 1 "CASL_WRITE_NOW.")
(defconstant +write-notify+ 2 "CASL_WRITE_NOTIFY.")

(defc %tcp-connect "casl_tcp_connect" :int
  (loop :pointer) (id :int64) (host nullable-string) (port :int) (out :pointer))
(defc %server-listen "casl_server_listen" :int
  (loop :pointer) (id :int64) (addr nullable-string) (port :int) (backlog :int)
  (out :pointer))
(defc %server-open-fd "casl_server_open_fd" :int
  (loop :pointer) (id :int64) (fd :int) (backlog :int) (out :pointer))
(defc server-port "casl_server_port" :int (server :pointer))
(defc server-set-tls "casl_server_set_tls" :int
  (server :pointer) (ctx :pointer) (handshake-ms :uint64))
(defc server-close "casl_server_close" :void (server :pointer))
(defc %tcp-write "casl_tcp_write" :int
  (conn :pointer) (buf :pointer) (len :size) (flags :int))
(defc tcp-write-queue-size "casl_tcp_write_queue_size" :size (conn :pointer))
(defc tcp-read-stop "casl_tcp_read_stop" :int (conn :pointer))
(defc tcp-read-start "casl_tcp_read_start" :int (conn :pointer))
(defc tcp-set-timeouts "casl_tcp_set_timeouts" :int
  (conn :pointer) (read-ms :uint64) (write-ms :uint64))
(defc tcp-close "casl_tcp_close" :void (conn :pointer) (force :boolean))
(defc tcp-error-text "casl_tcp_error" :string (conn :pointer))
(defc %tcp-peer-address "casl_tcp_peer_address" :int
  (conn :pointer) (buf :pointer) (len :size) (port :pointer))
(defc %tcp-local-address "casl_tcp_local_address" :int
  (conn :pointer) (buf :pointer) (len :size) (port :pointer))
(defc tcp-fd "casl_tcp_fd" :int (conn :pointer))
(defc %tcp-connected "casl_tcp_connected" :int (conn :pointer))
(defc tcp-start-tls "casl_tcp_start_tls" :int
  (conn :pointer) (ctx :pointer) (server :boolean) (name nullable-string)
  (session-key nullable-string) (handshake-ms :uint64))
(defc tcp-tls "casl_tcp_tls" :pointer (conn :pointer))
(defc tcp-sni-select "casl_tcp_sni_select" :int (conn :pointer) (ctx :pointer))

(defun tcp-connect (loop id host port)
  "Starts connecting to HOST:PORT: (values connection-pointer code)."
  (with-out-pointer (out) (%tcp-connect loop id host port out)))

(defun server-listen (loop id address port backlog)
  "Listens on ADDRESS:PORT: (values server-pointer code)."
  (with-out-pointer (out) (%server-listen loop id address port backlog out)))

(defun server-open-fd (loop id fd backlog)
  "Listens on the bound socket FD: (values server-pointer code)."
  (with-out-pointer (out) (%server-open-fd loop id fd backlog out)))

(defun tcp-write (conn octets start end flags)
  "Queues OCTETS[START, END) (a simple octet vector, copied) on CONN."
  (declare (type (simple-array (unsigned-byte 8) (*)) octets)
           (type fixnum start end flags))
  (cffi:with-pointer-to-vector-data (p octets)
    (%tcp-write conn (cffi:inc-pointer p start) (- end start) flags)))

(defun address-of (fn conn)
  (cffi:with-foreign-objects ((buf :char 64) (port :int))
    (let ((rc (funcall fn conn buf 64 port)))
      (if (zerop rc)
          (values (cffi:foreign-string-to-lisp buf) (cffi:mem-ref port :int))
          (values nil rc)))))

(defun tcp-peer-address (conn)
  "The peer's address and port, or nil and a code."
  (address-of #'%tcp-peer-address conn))

(defun tcp-local-address (conn)
  "The local address and port, or nil and a code."
  (address-of #'%tcp-local-address conn))

(defun tcp-connected-p (conn)
  "True once CONN is connected (and its TLS handshake, if any, is done)."
  (/= 0 (%tcp-connected conn)))

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
  (ctx :pointer) (on :boolean))
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

(defun tls-peer-cert (tls)
  "The peer certificate as a plist of raw fields (times as Unix times, SANs
one per line), or nil."
  (cffi:with-foreign-object (out :pointer)
    (when (zerop (%tls-peer-cert tls out))
      (let ((info (cffi:mem-ref out :pointer)))
        (cffi:with-foreign-slots ((subject issuer sans not-before not-after
                                           serial sha256 pem)
                                  info (:struct casl-cert-info))
          (list :subject subject :issuer issuer :sans sans
                :not-before not-before :not-after not-after
                :serial serial :sha256 sha256 :pem pem))))))
