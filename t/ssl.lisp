;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; ssl.lisp --- cl-async-ssl: the seed's promises, verification, interop.

(in-package #:cl-async-ssl-test)

(def-suite ssl :in cl-async-ssl-test :description "TLS sockets and servers.")
(in-suite ssl)

;;;# The seed page's examples

(test seed-examples-against-each-other
  "The seed's server example (positional event-cb, write-cb closing the
socket) and client example (:read-timeout, :data, positional event-cb),
on loopback, the client trusting the test CA."
  (let ((server-data nil) (client-got nil) (client-events '()))
    (with-test-loop ()
      (let ((server
              (as-ssl:tcp-ssl-server "127.0.0.1" 0
                                     (lambda (socket data)
                                       (setf server-data (text data))
                                       (as:write-socket-data socket "THIS IS A SECURE LINE!"
                                                             :write-cb (lambda (socket)
                                                                         (as:close-socket socket))))
                                     (lambda (ev) (declare (ignore ev)))
                                     :certificate (cert "server-chain.pem")
                                     :key (cert "server.key"))))
        (handler-bind ((warning #'muffle-warning))
          (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                  (lambda (socket data)
                                    (declare (ignore socket))
                                    (setf client-got (text data)))
                                  (lambda (ev)
                                    (push ev client-events)
                                    (as:close-tcp-server server))
                                  :read-timeout 3
                                  :ca-file (cert "ca.pem")
                                  :data (format nil "GET /~c~c" #\return #\newline)))))
    (is (equal (format nil "GET /~c~c" #\return #\newline) server-data))
    (is (equal "THIS IS A SECURE LINE!" client-got))
    (is (= 1 (length client-events)))
    (is (typep (first client-events) 'as:tcp-eof)
        "the server's close_notify is a clean EOF: ~a" (first client-events))
    (is (not (typep (first client-events) 'as-ssl:tcp-ssl-truncated)))))

(test ssl-simple-client-server
  "Upstream's tcp-ssl-simple-client-server: two clients (IP and name) send
:data \"ha\" and an immediate write of \"i \"; the server reads \"hai \"
once from each."
  (let ((server-reads '()) (connects 0) (replies '()))
    (with-test-loop ()
      (let* ((server (apply #'as-ssl:tcp-ssl-server nil 0
                            (lambda (s d)
                              (push (text d) server-reads)
                              (as:write-socket-data s "thxlol "))
                            :connect-cb (lambda (s) (declare (ignore s)) (incf connects))
                            (server-args)))
             (port (as:tcp-server-port server))
             (done 0))
        (dolist (host '("127.0.0.1" "localhost"))
          (let ((sock (as-ssl:tcp-ssl-connect host port
                                              (lambda (s d)
                                                (push (text d) replies)
                                                (as:close-socket s)
                                                (when (= 2 (incf done))
                                                  (as:close-tcp-server server)))
                                              :ca-file (cert "ca.pem")
                                              :data "ha")))
            (as:write-socket-data sock "i ")))))
    (is (equal '("hai " "hai ") server-reads))
    (is (= 2 connects))
    (is (equal '("thxlol " "thxlol ") replies))))

(test connect-cb-after-handshake-on-both-sides
  (let ((client-proto nil) (server-proto nil))
    (with-test-loop ()
      (let ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
                           (lambda (s d) (declare (ignore s d)))
                           :connect-cb (lambda (s)
                                         (setf server-proto (as-ssl:ssl-socket-protocol s))
                                         (as:close-socket s))
                           (server-args))))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server) nil
                                :ca-file (cert "ca.pem")
                                :connect-cb (lambda (s)
                                              (setf client-proto (as-ssl:ssl-socket-protocol s))
                                              (as:close-socket s)
                                              (as:close-tcp-server server)))))
    (is (equal "TLSv1.3" client-proto))
    (is (equal "TLSv1.3" server-proto))))

(test write-cb-only-for-application-data
  "write-cb never fires for handshake flights; it fires once the
application's data has been flushed."
  (let ((writes 0) (writes-at-connect nil) (echo nil))
    (with-test-loop ()
      (let ((server (ssl-echo-server)))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d)
                                  (setf echo (text d))
                                  (as:close-socket s)
                                  (as:close-tcp-server server))
                                :ca-file (cert "ca.pem")
                                :write-cb (lambda (s) (declare (ignore s)) (incf writes))
                                :connect-cb (lambda (s)
                                              (setf writes-at-connect writes)
                                              (as:write-socket-data s "app data")))))
    (is (eql 0 writes-at-connect))
    (is (= 1 writes))
    (is (equal "app data" echo))))

(test stream-mode-both-sides
  ":stream t on both client and server: read-cb gets (socket stream)."
  (let ((server-text nil) (client-text nil))
    (with-test-loop ()
      (let ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
                           (lambda (sock stream)
                             (is (typep sock 'as-ssl:ssl-socket))
                             (is (typep stream 'as:async-io-stream))
                             (let* ((buf (make-array 100 :element-type '(unsigned-byte 8)))
                                    (n (read-sequence buf stream)))
                               (setf server-text (text (subseq buf 0 n)))
                               (write-sequence (octets "stream reply") stream)))
                           :stream t (server-args))))
        (let ((stream (as-ssl:tcp-ssl-connect
                       "127.0.0.1" (as:tcp-server-port server)
                       (lambda (sock stream)
                         (let* ((buf (make-array 100 :element-type '(unsigned-byte 8)))
                                (n (read-sequence buf stream)))
                           (setf client-text (text (subseq buf 0 n))))
                         (as:close-socket sock)
                         (as:close-tcp-server server))
                       :stream t :ca-file (cert "ca.pem"))))
          (is (typep stream 'as:async-io-stream))
          (write-sequence (octets "via stream") stream))))
    (is (equal "via stream" server-text))
    (is (equal "stream reply" client-text))))

(test dont-drain-read-buffer
  "With :stream t the read buffer is drained only by reading the stream:
data left unread is still there at the next read-cb."
  (let ((first-available nil) (total nil))
    (with-test-loop ()
      (let* ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
                            (lambda (s d) (declare (ignore d)) s)
                            :connect-cb (lambda (s)
                                          (as:write-socket-data s "abc")
                                          (as:with-delay (0.1) (as:write-socket-data s "def"))
                                          (as:with-delay (0.3) (as:close-socket s)))
                            (server-args)))
             (reads 0))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (sock stream)
                                  (declare (ignore sock))
                                  (if (= 1 (incf reads))
                                      (setf first-available (listen stream)) ; leave it
                                      (let* ((buf (make-array 100 :element-type '(unsigned-byte 8)))
                                             (n (read-sequence buf stream)))
                                        (setf total (text (subseq buf 0 n))))))
                                :stream t :ca-file (cert "ca.pem")
                                :event-cb (lambda (e) (declare (ignore e))
                                            (as:close-tcp-server server)))))
    (is-true first-available)
    (is (equal "abcdef" total))))

;;;# Interop with OpenSSL's own tools

(defun s-server-round-trip (tls-flag)
  "Our client against `openssl s_server -rev' (it answers each line
reversed)."
  (let ((reply nil) (proto nil) (events '()))
    (with-openssl-server (port "-cert" (cert "server.pem") "-key" (cert "server.key")
                               "-cert_chain" (cert "int.pem") tls-flag "-rev" "-quiet")
      (with-test-loop ()
        (as-ssl:tcp-ssl-connect "127.0.0.1" port
                                (lambda (s d)
                                  (setf reply (string-trim '(#\Newline #\Return) (text d))
                                        proto (as-ssl:ssl-socket-protocol s))
                                  (as:close-socket s))
                                :ca-file (cert "ca.pem")
                                :event-cb (lambda (e) (push e events))
                                :data (format nil "hello~%"))))
    (is (equal "olleh" reply) "events: ~a" events)
    proto))

(test interop-openssl-s-server-tls12
  (is (equal "TLSv1.2" (s-server-round-trip "-tls1_2"))))

(test interop-openssl-s-server-tls13
  (is (equal "TLSv1.3" (s-server-round-trip "-tls1_3"))))

(defun s-client-round-trip (tls-flag)
  "`openssl s_client' against our echo server: it sends a line, our server
echoes it and closes."
  (let ((proto nil) (out nil) (err nil))
    (with-test-loop ()
      (let* ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
                            (lambda (s d)
                              (setf proto (as-ssl:ssl-socket-protocol s))
                              (as:write-socket-data s d)
                              (as:close-socket s))
                            (server-args)))
             (p (run-openssl-client (as:tcp-server-port server) (format nil "interop~%")
                                    (list tls-flag "-CAfile" (cert "ca.pem")
                                          "-verify_return_error"))))
        (wait-for-process p (lambda ()
                              (multiple-value-setq (out err) (process-output-text p))
                              (as:close-tcp-server server)))))
    (is (search "interop" out) "s_client said: ~a ~a" out err)
    proto))

(test interop-openssl-s-client-tls12
  (is (equal "TLSv1.2" (s-client-round-trip "-tls1_2"))))

(test interop-openssl-s-client-tls13
  (is (equal "TLSv1.3" (s-client-round-trip "-tls1_3"))))

(test tls11-only-server-is-refused
  "Our client (TLS 1.2 minimum) refuses a server that only speaks TLS 1.1."
  (let ((ev nil))
    (with-openssl-server (port "-cert" (cert "server.pem") "-key" (cert "server.key")
                               "-tls1_1" "-cipher" "DEFAULT:@SECLEVEL=0" "-quiet")
      (with-test-loop ()
        (as-ssl:tcp-ssl-connect "127.0.0.1" port
                                (lambda (s d) (declare (ignore d)) (as:close-socket s))
                                :ca-file (cert "ca.pem")
                                :event-cb (lambda (e) (setf ev e))
                                :data "x")))
    (is (typep ev 'as-ssl:tcp-ssl-error) "got ~a" ev)
    (is (search "version" (princ-to-string ev)))))

;;;# Verification

(defun verify-outcome (server-cert &rest client-args)
  "Connects to a server presenting SERVER-CERT; :ok, or the client's event."
  (let* ((r (ssl-round-trip :server-args (server-args server-cert)
                            :client-args client-args))
         (ev (first (getf r :client-events))))
    (cond ((equal (getf r :reply) "ping") :ok)
          (ev ev)
          (t :nothing))))

(test verify-good-chain-with-ca-file
  (is (eq :ok (verify-outcome "server" :ca-file (cert "ca.pem")))))

(test verify-good-chain-with-ca-path
  (is (eq :ok (verify-outcome "server" :ca-path (cert "cadir")))))

(test verify-ip-san-match
  "Connecting to 127.0.0.1 checks the certificate's IP SANs (server.pem
has 127.0.0.1)."
  (is (eq :ok (verify-outcome "server" :ca-file (cert "ca.pem")))))

(test verify-ip-san-mismatch
  (let ((ev (verify-outcome "nameonly" :ca-file (cert "ca.pem"))))
    (is (typep ev 'as-ssl:tcp-ssl-verify-error) "got ~a" ev)))

(defmacro verify-fails (name cert-name &rest args)
  `(test ,name
     (let ((ev (verify-outcome ,cert-name ,@args)))
       (is (typep ev 'as-ssl:tcp-ssl-verify-error) "got ~a" ev)
       (when (typep ev 'as-ssl:tcp-ssl-verify-error)
         (is (plusp (as-ssl:tcp-ssl-verify-code ev)))
         (is (stringp (as-ssl:tcp-ssl-verify-message ev)))
         (is (search ":verify nil" (princ-to-string ev))
             "the message says what to pass: ~a" ev)))))

(verify-fails verify-self-signed "selfsigned" :ca-file (cert "ca.pem"))
(verify-fails verify-expired "expired" :ca-file (cert "ca.pem"))
(verify-fails verify-not-yet-valid "notyet" :ca-file (cert "ca.pem"))
(verify-fails verify-wrong-hostname "wrongname" :ca-file (cert "ca.pem"))
(verify-fails verify-untrusted-ca "untrusted" :ca-file (cert "ca.pem"))
(verify-fails verify-without-ca-file "server")

(test verify-error-messages-name-the-problem
  (let ((self (verify-outcome "selfsigned" :ca-file (cert "ca.pem")))
        (wrong (verify-outcome "wrongname" :hostname "localhost"
                                            :ca-file (cert "ca.pem"))))
    (is (search "self-signed" (princ-to-string self)))
    (is (search ":ca-file" (princ-to-string self)))
    (is (search ":hostname" (princ-to-string wrong)))))

(test verify-nil-accepts-everything
  (dolist (name '("selfsigned" "expired" "wrongname" "untrusted"))
    (is (eq :ok (verify-outcome name :verify nil)) "~a" name)))

(test verify-default-special-nil-accepts
  (let ((as-ssl:*ssl-verify-default* nil))
    (is (eq :ok (verify-outcome "selfsigned")))))

(test hostname-overrides-the-name
  "wrongname.pem is for wrong.example: connecting to 127.0.0.1 with
:hostname \"wrong.example\" verifies."
  (is (eq :ok (verify-outcome "wrongname" :hostname "wrong.example"
                                          :ca-file (cert "ca.pem")))))

(test localhost-name-is-verified
  (let ((r (ssl-round-trip :host "localhost" :client-args (list :ca-file (cert "ca.pem")))))
    (is (equal "ping" (getf r :reply)))
    (is (equal "localhost" (as-ssl:ssl-socket-server-name (getf r :client))))))

;;;# Contexts and options

(defvar *libssl-loaded* nil)

(defun libssl-call (name &rest args)
  "Calls OpenSSL's NAME directly (as user code with its own SSL_CTX would)."
  (unless *libssl-loaded*
    (cffi:load-foreign-library "libssl.so.3")
    (setf *libssl-loaded* t))
  (eval `(cffi:foreign-funcall ,name ,@args)))

(defun raw-server-ctx ()
  (let ((ctx (libssl-call "SSL_CTX_new" :pointer (libssl-call "TLS_server_method" :pointer)
                          :pointer)))
    (assert (= 1 (libssl-call "SSL_CTX_use_certificate_chain_file" :pointer ctx
                              :string (cert "server-chain.pem") :int)))
    (assert (= 1 (libssl-call "SSL_CTX_use_PrivateKey_file" :pointer ctx
                              :string (cert "server.key") :int 1 :int)))
    ctx))

(defun raw-client-ctx ()
  (libssl-call "SSL_CTX_new" :pointer (libssl-call "TLS_client_method" :pointer) :pointer))

(test raw-ssl-ctx-on-both-sides
  "SSL_CTX* made by the test through CFFI work as :ssl-ctx on both sides,
and are not freed by the library."
  (let ((sctx (raw-server-ctx)) (cctx (raw-client-ctx)) (reply nil))
    (unwind-protect
         (progn
           (with-test-loop ()
             (let ((server (as-ssl:tcp-ssl-server "127.0.0.1" 0
                                                  (lambda (s d) (as:write-socket-data s d))
                                                  :ssl-ctx sctx)))
               (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                       (lambda (s d)
                                         (setf reply (text d))
                                         (as:close-socket s)
                                         (as:close-tcp-server server))
                                       :ssl-ctx cctx
                                       :data "raw")))
           (is (equal "raw" reply))
           ;; still usable: a new SSL from each context works
           (let ((ssl (libssl-call "SSL_new" :pointer sctx :pointer)))
             (is (not (cffi:null-pointer-p ssl)))
             (libssl-call "SSL_free" :pointer ssl :void)))
      (libssl-call "SSL_CTX_free" :pointer sctx :void)
      (libssl-call "SSL_CTX_free" :pointer cctx :void))))

(test make-ssl-context-reused
  (let ((server-ctx (as-ssl:make-ssl-context :server t
                                             :certificate (cert "server-chain.pem")
                                             :key (cert "server.key")))
        (client-ctx (as-ssl:make-ssl-context :ca-file (cert "ca.pem")))
        (replies '()))
    (with-test-loop ()
      (let ((server (as-ssl:tcp-ssl-server "127.0.0.1" 0
                                           (lambda (s d) (as:write-socket-data s d))
                                           :ssl-ctx server-ctx))
            (left 3))
        (dotimes (i 3)
          (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                  (lambda (s d)
                                    (push (text d) replies)
                                    (as:close-socket s)
                                    (when (zerop (decf left))
                                      (as:close-tcp-server server)))
                                  :ssl-ctx client-ctx
                                  :data (format nil "~a" i)))))
    (is (equal '("0" "1" "2") (sort replies #'string<)))
    (is (cffi:pointerp (as-ssl:ssl-context-pointer client-ctx)))
    (as-ssl:free-ssl-context server-ctx)
    (as-ssl:free-ssl-context client-ctx)
    (as-ssl:free-ssl-context client-ctx)))

(test ssl-options-no-tlsv1-3-gives-tls12
  (let ((r (ssl-round-trip :client-args (list :ca-file (cert "ca.pem")
                                              :ssl-options (list as-ssl:+ssl-op-no-tlsv1-3+)))))
    (is (equal "ping" (getf r :reply)))
    (is (equal "TLSv1.2" (as-ssl:ssl-socket-protocol (getf r :client))))))

(test ssl-options-integer-accepted
  (let ((r (ssl-round-trip :client-args (list :ca-file (cert "ca.pem")
                                              :ssl-options as-ssl:+ssl-op-no-tlsv1-3+))))
    (is (equal "TLSv1.2" (as-ssl:ssl-socket-protocol (getf r :client))))))

(test ciphers-restrict-the-tls12-cipher
  (let ((r (ssl-round-trip :client-args (list :ca-file (cert "ca.pem")
                                              :max-version :tlsv1.2
                                              :ciphers "ECDHE-ECDSA-AES128-GCM-SHA256"))))
    (is (equal "ping" (getf r :reply)))
    (is (equal "ECDHE-ECDSA-AES128-GCM-SHA256" (as-ssl:ssl-socket-cipher (getf r :client))))))

(test min-max-version
  (let ((r (ssl-round-trip :client-args (list :ca-file (cert "ca.pem")
                                              :min-version :tlsv1.2 :max-version :tlsv1.2))))
    (is (equal "TLSv1.2" (as-ssl:ssl-socket-protocol (getf r :client)))))
  (let ((r (ssl-round-trip :server-args (list :max-version :tlsv1.2)
                           :client-args (list :ca-file (cert "ca.pem") :min-version :tlsv1.3))))
    (is (null (getf r :reply)))
    (is (typep (first (getf r :client-events)) 'as-ssl:tcp-ssl-error))))

(test option-constants-come-from-the-library
  (is (= as-ssl:+ssl-op-no-tlsv1-3+ (cl-async-ffi:tls-constant "SSL_OP_NO_TLSv1_3")))
  (is (plusp as-ssl:+ssl-op-no-tlsv1-3+))
  (is (plusp as-ssl:+ssl-op-all+))
  (is (= 1 as-ssl:+ssl-verify-peer+))
  (is (= 2 as-ssl:+ssl-verify-fail-if-no-peer-cert+)))

(test keytype-asn1
  (let ((r (ssl-round-trip :server-args (list :certificate (cert "server-chain.pem")
                                              :key (cert "server.key.der")
                                              :keytype :asn1)
                           :client-args (list :ca-file (cert "ca.pem")))))
    (is (equal "ping" (getf r :reply)))))

(test certificate-and-key-in-one-file
  (let ((r (ssl-round-trip :server-args (list :certificate (cert "certkey.pem"))
                           :client-args (list :ca-file (cert "ca.pem")))))
    (is (equal "ping" (getf r :reply)))))

(test encrypted-key-with-password
  (let ((r (ssl-round-trip :server-args (list :certificate (cert "server-chain.pem")
                                              :key (cert "server-enc.key")
                                              :password "secret")
                           :client-args (list :ca-file (cert "ca.pem")))))
    (is (equal "ping" (getf r :reply))))
  (as:with-event-loop ()
    (let ((e (handler-case (as-ssl:tcp-ssl-server "127.0.0.1" 0 nil
                                                  :certificate (cert "server-chain.pem")
                                                  :key (cert "server-enc.key")
                                                  :password "hunter2-not-it")
               (as-ssl:tcp-ssl-error (e) e))))
      (is (typep e 'as-ssl:tcp-ssl-error))
      (is (not (search "hunter2" (princ-to-string e))) "no password in the text"))))

(test bad-certificate-or-key-signals
  (as:with-event-loop ()
    (signals as-ssl:tcp-ssl-error
      (as-ssl:tcp-ssl-server "127.0.0.1" 0 nil :certificate "/nonexistent/cert.pem"
                                               :key (cert "server.key")))
    (signals as-ssl:tcp-ssl-error
      (as-ssl:tcp-ssl-server "127.0.0.1" 0 nil :certificate (cert "server-chain.pem")
                                               :key (cert "client.key")))
    (let ((e (handler-case (as-ssl:tcp-ssl-server "127.0.0.1" 0 nil
                                                  :certificate (cert "server-chain.pem")
                                                  :key (cert "client.key"))
               (as-ssl:tcp-ssl-error (e) (princ-to-string e)))))
      (is (search "does not match" e) "~a" e))
    (signals error (as-ssl:tcp-ssl-server "127.0.0.1" 0 nil))))

;;;# Robustness

(test plaintext-client-is-disconnected
  "A plaintext HTTP request to the TLS server: the client is cut off, the
server's event-cb gets a tcp-ssl-error, and the next good client works."
  (let ((server-events '()) (plain-events '()) (good nil))
    (with-test-loop ()
      (let ((server (ssl-echo-server :event-cb (lambda (e) (push e server-events)))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                        :data (format nil "GET / HTTP/1.0~c~c~c~c" #\Return #\Newline
                                      #\Return #\Newline)
                        :event-cb (lambda (e)
                                    (push e plain-events)
                                    (as-ssl:tcp-ssl-connect
                                     "127.0.0.1" (as:tcp-server-port server)
                                     (lambda (s d)
                                       (setf good (text d))
                                       (as:close-socket s)
                                       (as:close-tcp-server server))
                                     :ca-file (cert "ca.pem") :data "good")))))
    (is (typep (first plain-events) 'as:socket-error))
    (is (some (lambda (e) (typep e 'as-ssl:tcp-ssl-error)) server-events))
    (is (equal "good" good))))

(test silent-client-cut-off-by-handshake-timeout
  (let ((server-events '()) (client-ev nil))
    (with-test-loop ()
      (let ((server (ssl-echo-server :handshake-timeout 0.3
                                     :event-cb (lambda (e) (push e server-events)))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                        :event-cb (lambda (e)
                                    (setf client-ev e)
                                    (as:close-tcp-server server)))))
    (is (typep (first server-events) 'as:tcp-timeout))
    (is (search "handshake" (princ-to-string (first server-events))))
    (is (typep client-ev 'as:socket-error))))

(test close-socket-sends-close-notify
  "Our close sends close_notify: the peer sees a clean EOF."
  (let ((server-ev nil))
    (with-test-loop ()
      (let ((server (ssl-echo-server :event-cb (lambda (e) (setf server-ev e)))))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server) nil
                                :ca-file (cert "ca.pem")
                                :connect-cb (lambda (s)
                                              (as:close-socket s)
                                              (as:with-delay (0.2)
                                                (as:close-tcp-server server))))))
    (is (typep server-ev 'as:tcp-eof))
    (is (not (typep server-ev 'as-ssl:tcp-ssl-truncated)))))

(test drop-without-close-notify-is-truncated
  "A peer that drops TCP without close_notify: tcp-ssl-truncated (a tcp-eof)."
  (let ((server-ev nil))
    (with-test-loop ()
      (let ((server (ssl-echo-server :event-cb (lambda (e) (setf server-ev e)))))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d) (declare (ignore d))
                                  (as:close-socket s :force t)
                                  (as:with-delay (0.2) (as:close-tcp-server server)))
                                :ca-file (cert "ca.pem") :data "x")))
    (is (typep server-ev 'as-ssl:tcp-ssl-truncated))
    (is (typep server-ev 'as:tcp-eof))
    (is (typep server-ev 'as-ssl:tcp-ssl-error))))

(test one-mib-tls-echo-intact
  (let* ((data (random-octets (* 1024 1024) 7)) (got '()) (total 0))
    (with-test-loop ()
      (let ((server (ssl-echo-server)))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d)
                                  (push d got)
                                  (when (>= (incf total (length d)) (length data))
                                    (as:close-socket s)
                                    (as:close-tcp-server server)))
                                :ca-file (cert "ca.pem") :data data)))
    (is (equalp data (concat-octets (reverse got))))))

(test tls-reused-read-buffer-keeps-data-intact
  "tcp-ssl-server and tcp-ssl-connect take :read-buffer :reuse: 4 MiB
echoed over TLS through reused vectors arrive intact."
  (let* ((data (random-octets (* 4 1024 1024) 13)) (got '()) (vectors '())
         (total 0))
    (with-test-loop ()
      (let ((server (ssl-echo-server :read-buffer :reuse)))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d)
                                  (pushnew d vectors)
                                  (push (copy-seq d) got)
                                  (when (>= (incf total (length d)) (length data))
                                    (as:close-socket s)
                                    (as:close-tcp-server server)))
                                :ca-file (cert "ca.pem") :data data
                                :read-buffer :reuse)))
    (is (equalp data (concat-octets (reverse got))))
    (is (= 1 (length vectors)))))

(test tls-read-buffer-takes-fresh-or-reuse
  "A bad :read-buffer on tcp-ssl-connect or tcp-ssl-server is an
ARGUMENT-ERROR naming the function and what the keyword takes."
  (with-test-loop ()
    (loop :for (name call)
            :in (list (list "tcp-ssl-connect"
                            (lambda () (as-ssl:tcp-ssl-connect "127.0.0.1" 1 nil
                                                               :read-buffer "reuse")))
                      (list "tcp-ssl-server"
                            (lambda () (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0 nil
                                              :read-buffer :reused (server-args)))))
          :do (let ((e (handler-case (progn (funcall call) nil)
                         (as:argument-error (e) e))))
                (is (typep e 'as:argument-error) "~a accepted a bad :read-buffer" name)
                (when e
                  (is (search name (princ-to-string e)))
                  (is (search ":reuse" (princ-to-string e))))))))

(test two-hundred-concurrent-tls-clients
  (let ((ok 0) (n 200) (stats nil))
    (with-test-loop (:timeout 60)
      (let* ((server (ssl-echo-server))
             (port (as:tcp-server-port server))
             (left n))
        (dotimes (i n)
          (let ((msg (format nil "tls client ~d" i)))
            (as-ssl:tcp-ssl-connect "127.0.0.1" port
                                    (lambda (s d)
                                      (when (equal msg (text d)) (incf ok))
                                      (as:close-socket s)
                                      (when (zerop (decf left))
                                        (as:close-tcp-server server)
                                        (as:with-delay (0.3) (setf stats (as:stats)))))
                                    :ca-file (cert "ca.pem") :data msg)))))
    (is (= n ok))
    (is (= 0 (getf stats :outgoing-tcp-connections)))
    (is (= 0 (getf stats :incoming-tcp-connections)))
    (is (= 0 (getf stats :tls-connections)))))

(defun tls-close-inside (where)
  (let ((closed nil))
    (with-test-loop (:timeout 10)
      (let ((server (ssl-echo-server
                     :event-cb (lambda (e) (declare (ignore e))))))
        (flet ((done (s)
                 (as:close-socket s)
                 (as:close-socket s)
                 (setf closed (as:socket-closed-p s))
                 (as:close-tcp-server server)))
          (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                  (lambda (s d) (declare (ignore d))
                                    (when (eq where :read) (done s))
                                    (when (eq where :event)
                                      ;; make the server hang up on us
                                      (as:write-socket-data s "x")))
                                  :write-cb (lambda (s) (when (eq where :write) (done s)))
                                  :connect-cb (lambda (s) (when (eq where :connect) (done s)))
                                  :event-cb (lambda (e) (when (eq where :event) (done (as:socket e))))
                                  :ca-file (cert (if (eq where :event) "other-ca.pem" "ca.pem"))
                                  :data "x"))))
    (is-true closed)))

(test tls-close-inside-read-cb (tls-close-inside :read))
(test tls-close-inside-write-cb (tls-close-inside :write))
(test tls-close-inside-connect-cb (tls-close-inside :connect))
(test tls-close-inside-event-cb (tls-close-inside :event))

(test tls-write-after-close-signals
  (with-test-loop ()
    (let* ((server (ssl-echo-server))
           (s (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server) nil
                                      :ca-file (cert "ca.pem"))))
      (as:close-socket s)
      (as:close-socket s)
      (signals as:socket-closed (as:write-socket-data s "late"))
      (as:close-tcp-server server))))

(test close-tcp-server-with-live-tls-connections
  (let ((reply nil))
    (with-test-loop ()
      (let ((server (ssl-echo-server)))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d) (setf reply (text d)) (as:close-socket s))
                                :ca-file (cert "ca.pem")
                                :connect-cb (lambda (s)
                                              (as:close-tcp-server server)
                                              (as:with-delay (0.1)
                                                (as:write-socket-data s "after close"))))))
    (is (equal "after close" reply))))

(test exit-event-loop-during-handshakes
  "exit-event-loop while 20 handshakes are in flight: the loop ends at
once, everything is freed, and the next loop works."
  (let ((tls-before (cl-async-ffi:tls-live-count)))
    (as:with-event-loop ()
      (let ((server (ssl-echo-server)))
        (dotimes (i 20)
          (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server) nil
                                  :ca-file (cert "ca.pem") :data "x"))
        (as:with-delay (0.005) (as:exit-event-loop))))
    (is (= tls-before (cl-async-ffi:tls-live-count))))
  (is (equal "ping" (getf (ssl-round-trip :client-args (list :ca-file (cert "ca.pem")))
                          :reply))))

(test thousand-sequential-connections-leave-nothing
  (let ((done 0) (stats nil) (n 1000))
    (with-test-loop (:timeout 120)
      (let ((server (ssl-echo-server)))
        (labels ((one ()
                   (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                           (lambda (s d) (declare (ignore d))
                                             (as:close-socket s)
                                             (if (< (incf done) n)
                                                 (one)
                                                 (progn
                                                   (as:close-tcp-server server)
                                                   (as:with-delay (0.3)
                                                     (setf stats (as:stats))))))
                                           :ca-file (cert "ca.pem") :data "x")))
          (one))))
    (is (= n done))
    (is (= 0 (getf stats :tls-connections)))
    (is (= 0 (getf stats :outgoing-tcp-connections)))
    (is (= 0 (getf stats :incoming-tcp-connections)))
    (is (= 2 (getf stats :open-handles)) "only the stats delay and the guard: ~a" stats)))

(test default-client-contexts-are-cached
  "Connections with the same options share one context (no trust store
reload per connect)."
  (let ((contexts '()))
    (with-test-loop ()
      (let ((server (ssl-echo-server)) (left 3))
        (dotimes (i 3)
          (push (as-ssl::ssl-socket-context
                 (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                         (lambda (s d) (declare (ignore d))
                                           (as:close-socket s)
                                           (when (zerop (decf left))
                                             (as:close-tcp-server server)))
                                         :ca-file (cert "ca.pem") :data "x"))
                contexts))))
    (is (= 1 (length (remove-duplicates contexts))))))

;;;# The rest of the seed page, sentence by sentence

(test seed-default-cipher-list
  "The default cipher list is the seed's."
  (is (equal "HIGH:!RC4:!MD5:!aNULL:!EDH:!EXP:+ECDHE-RSA-AES128-SHA256:+3DES"
             as-ssl:*ssl-default-ciphers*)))

(test seed-classes
  "ssl-socket extends socket; tcp-ssl-server extends tcp-server; tcp-ssl-error
extends tcp-error."
  (is (subtypep 'as-ssl:ssl-socket 'as:socket))
  (is (subtypep 'as-ssl:tcp-ssl-server 'as:tcp-server))
  (is (subtypep 'as-ssl:tcp-ssl-error 'as:tcp-error))
  (is (subtypep 'as-ssl:tcp-ssl-verify-error 'as-ssl:tcp-ssl-error))
  (is (subtypep 'as-ssl:tcp-ssl-truncated 'as:tcp-eof)))

(test ssl-options-and-ciphers-ignored-with-ssl-ctx
  "With :ssl-ctx, :ssl-options and :ciphers are ignored (the context's own
settings apply)."
  (let ((ctx (as-ssl:make-ssl-context :ca-file (cert "ca.pem"))))
    (unwind-protect
         (let ((r (ssl-round-trip :client-args (list :ssl-ctx ctx
                                                     :ssl-options (list as-ssl:+ssl-op-no-tlsv1-3+)
                                                     :ciphers "NO-SUCH-CIPHER"))))
           (is (equal "ping" (getf r :reply)))
           (is (equal "TLSv1.3" (as-ssl:ssl-socket-protocol (getf r :client)))))
      (as-ssl:free-ssl-context ctx))))

(test server-ssl-options-ciphers-and-backlog
  (let ((r (ssl-round-trip :server-args (list :ssl-options (list as-ssl:+ssl-op-no-tlsv1-3+)
                                              :ciphers "ECDHE-ECDSA-CHACHA20-POLY1305"
                                              :backlog 16)
                           :client-args (list :ca-file (cert "ca.pem")))))
    (is (equal "ping" (getf r :reply)))
    (is (equal "TLSv1.2" (as-ssl:ssl-socket-protocol (getf r :client))))
    (is (equal "ECDHE-ECDSA-CHACHA20-POLY1305" (as-ssl:ssl-socket-cipher (getf r :client))))))

(test tls-read-timeout
  ":read-timeout on tcp-ssl-connect: a server that never answers gives a
tcp-timeout."
  (let ((ev nil))
    (with-test-loop ()
      (let ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
                           (lambda (s d) (declare (ignore s d)))
                           (server-args))))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server) nil
                                :ca-file (cert "ca.pem") :read-timeout 0.3
                                :data "no answer"
                                :event-cb (lambda (e) (setf ev e)
                                            (as:close-tcp-server server)))))
    (is (typep ev 'as:tcp-timeout))))

(test tls-write-timeout
  ":write-timeout: queued data that makes no progress (the peer stopped
reading) gives a tcp-timeout."
  (let ((ev nil))
    (with-test-loop ()
      (let ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
                           (lambda (s d) (declare (ignore d))
                             (as:disable-socket s :read t))   ; never reads again
                           (server-args))))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server) nil
                                :ca-file (cert "ca.pem") :write-timeout 0.5
                                :connect-cb (lambda (s)
                                              (as:write-socket-data s "first")
                                              (as:with-delay (0.1)
                                                (as:write-socket-data
                                                 s (make-array (* 32 1024 1024)
                                                               :element-type '(unsigned-byte 8)))))
                                :event-cb (lambda (e) (setf ev e)
                                            (as:close-tcp-server server)))))
    (is (typep ev 'as:tcp-timeout) "got ~a" ev)))

(test stream-is-the-object-returned
  "With :stream t, the stream given to read-cb is the one tcp-ssl-connect
returned, wrapping the ssl-socket."
  (let ((returned nil) (seen nil) (wrapped nil))
    (with-test-loop ()
      (let ((server (ssl-echo-server)))
        (setf returned
              (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                      (lambda (sock stream)
                                        (setf seen stream
                                              wrapped (eq (as:stream-socket stream) sock))
                                        (as:close-socket sock)
                                        (as:close-tcp-server server))
                                      :stream t :ca-file (cert "ca.pem") :data "s"))))
    (is (eq returned seen))
    (is-true wrapped)
    (is (typep (as:stream-socket returned) 'as-ssl:ssl-socket))))

(test server-connect-cb-before-read-cb
  "The server's connect-cb is always called before its read-cb."
  (let ((order '()))
    (with-test-loop ()
      (let ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
                           (lambda (s d) (declare (ignore d))
                             (push :read order) (as:close-socket s))
                           :connect-cb (lambda (s) (declare (ignore s)) (push :connect order))
                           (server-args))))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server) nil
                                :ca-file (cert "ca.pem") :data "early data"
                                :event-cb (lambda (e) (declare (ignore e))
                                            (as:close-tcp-server server)))))
    (is (equal '(:connect :read) (reverse order)))))
