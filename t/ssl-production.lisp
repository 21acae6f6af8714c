;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; ssl-production.lisp --- what a TLS service needs in production:
;;;; certificate rotation, shared ticket keys, OCSP, CRLs, pins and verify
;;;; callbacks, PKCS#12 and in-memory credentials, RSA+ECDSA on one server,
;;;; and errors that name the fix.  Certificates, CRLs, OCSP responses and
;;;; PKCS#12 files come from t/make-certs.sh (openssl ca, ocsp, pkcs12).

(in-package #:cl-async-ssl-test)

(def-suite ssl-production :in cl-async-ssl-test
  :description "Rotation, tickets, OCSP, CRLs, pins, PKCS#12, errors.")
(in-suite ssl-production)

(defun isearch (needle haystack)
  "SEARCH ignoring case."
  (and haystack (search needle haystack :test #'char-equal)))

(defun file-octets (path)
  (with-open-file (in path :element-type '(unsigned-byte 8))
    (let ((v (make-array (file-length in) :element-type '(unsigned-byte 8))))
      (read-sequence v in)
      v)))

(defun shell-output (command)
  (uiop:run-program (list "sh" "-c" command) :output '(:string :stripped t)))

(defun cert-serial (name)
  "The serial of a test certificate, as openssl prints it (upper-case hex)."
  (let ((line (shell-output (format nil "openssl x509 -noout -serial -in '~a'"
                                    (cert name)))))
    (subseq line (1+ (position #\= line)))))

(defun spki-pin (name)
  "The sha256// pin of a test certificate's public key, made by openssl."
  (concatenate 'string "sha256//"
               (shell-output
                (format nil "openssl x509 -in '~a' -pubkey -noout | openssl pkey ~
                             -pubin -outform DER | openssl dgst -sha256 -binary | ~
                             base64" (cert name)))))

(defun connect-once (port &rest args)
  "Connects to PORT (TLS, the test CA trusted), sends \"x\" and waits for the
echo; returns (values socket event serial): the socket, the first event it
got (nil on success) and the server's certificate serial."
  (let ((socket nil) (event nil) (serial nil))
    (with-test-loop ()
      (setf socket
            (apply #'as-ssl:tcp-ssl-connect "127.0.0.1" port
                   (lambda (s d) (declare (ignore d))
                     (setf serial (getf (as-ssl:ssl-socket-peer-certificate s) :serial))
                     (as:close-socket s))
                   :event-cb (lambda (e) (setf event e))
                   :data "x"
                   (append args (list :ca-file (cert "ca.pem"))))))
    (values socket event serial)))

;;;# 1. Rotation

(test reload-keeps-open-connections-and-serves-the-new-certificate
  (let ((old-serial nil) (new-serial nil) (old-again nil) (echo nil))
    (with-test-loop ()
      (let* ((server (ssl-echo-server))
             (port (as:tcp-server-port server)))
        (as-ssl:tcp-ssl-connect
         "127.0.0.1" port
         (lambda (s d)
           (cond ((null old-again)
                  (setf old-again (getf (as-ssl:ssl-socket-peer-certificate s) :serial))
                  (setf echo (text d))
                  (as:close-socket s)
                  (as:close-tcp-server server))))
         :ca-file (cert "ca.pem")
         :connect-cb
         (lambda (s)
           (setf old-serial (getf (as-ssl:ssl-socket-peer-certificate s) :serial))
           (as-ssl:reload-ssl-server server :certificate (cert "server-rsa-chain.pem")
                                            :key (cert "server-rsa.key"))
           ;; a new connection now gets the new certificate
           (as-ssl:tcp-ssl-connect
            "127.0.0.1" port
            (lambda (s2 d) (declare (ignore d))
              (setf new-serial (getf (as-ssl:ssl-socket-peer-certificate s2) :serial))
              (as:close-socket s2)
              ;; the old connection still works, on its certificate
              (as:write-socket-data s "still here"))
            :ca-file (cert "ca.pem") :data "x")))))
    (is (equal (cert-serial "server.pem") old-serial))
    (is (equal (cert-serial "server-rsa.pem") new-serial))
    (is (equal old-serial old-again))
    (is (equal "still here" echo))))

(test reload-to-a-bad-file-keeps-serving
  (let ((err nil) (serial nil) (event nil))
    (with-test-loop ()
      (let ((server (ssl-echo-server)))
        (handler-case (as-ssl:reload-ssl-server server
                                                :certificate (cert "missing.pem")
                                                :key (cert "server.key"))
          (as-ssl:tcp-ssl-error (e) (setf err e)))
        (handler-case (as-ssl:reload-ssl-server server
                                                :certificate (cert "alpha.pem")
                                                :key (cert "server.key"))
          (as-ssl:tcp-ssl-error (e) (push e event)))
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d) (declare (ignore d))
                                  (setf serial (getf (as-ssl:ssl-socket-peer-certificate s)
                                                     :serial))
                                  (as:close-socket s)
                                  (as:close-tcp-server server))
                                :event-cb (lambda (e) (push e event)
                                            (as:close-tcp-server server))
                                :ca-file (cert "ca.pem") :data "x")))
    (is (typep err 'as-ssl:tcp-ssl-error))
    (is (search "missing.pem" (princ-to-string err)))
    (is (= 1 (length event)) "a key that does not match is refused too: ~a" event)
    (is (search "does not match" (princ-to-string (first event))))
    (is (equal (cert-serial "server.pem") serial) "the old certificate serves")))

(test reload-with-pfx-and-unknown-keyword
  (let ((serial nil) (bad nil))
    (with-test-loop ()
      (let ((server (ssl-echo-server)))
        (handler-case (as-ssl:reload-ssl-server server :cert "x")
          (as:argument-error (e) (setf bad e)))
        (as-ssl:reload-ssl-server server :pfx (file-octets (cert "server.p12"))
                                         :password "secret")
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d) (declare (ignore d))
                                  (setf serial (getf (as-ssl:ssl-socket-peer-certificate s)
                                                     :serial))
                                  (as:close-socket s)
                                  (as:close-tcp-server server))
                                :ca-file (cert "ca.pem") :data "x")))
    (is (isearch ":cert" (princ-to-string bad)))
    (is (isearch ":certificate" (princ-to-string bad)) "the keyword meant is named")
    (is (equal (cert-serial "server.pem") serial))))

;;;# 2. Session-ticket keys

(defun ticket-key (seed)
  (let ((k (make-array 80 :element-type '(unsigned-byte 8))))
    (dotimes (i 80 k) (setf (aref k i) (mod (+ (* seed 37) i) 256)))))

(defun resumptions (steps &key (version :tlsv1.3) (session "svc"))
  "Connects in turn, in one loop, as the list (funcall STEPS) says: a
server (then connect to it with the session key SESSION), or a function
(run between two connections, e.g. to rotate keys).  Returns, in order,
whether each connection resumed."
  (let ((reused '()))
    (with-test-loop (:timeout 60)
      (labels ((next (steps)
                 (let ((step (first steps)))
                   (cond ((null steps))
                         ((functionp step) (funcall step) (next (rest steps)))
                         (t (as-ssl:tcp-ssl-connect
                             "127.0.0.1" (as:tcp-server-port step)
                             (lambda (s d) (declare (ignore d))
                               (push (as-ssl:ssl-socket-session-reused-p s) reused)
                               ;; TLS 1.3 tickets come after the handshake
                               (as:with-delay (0.05)
                                 (as:close-socket s)
                                 (next (rest steps))))
                             :ca-file (cert "ca.pem") :session session
                             :max-version version
                             :ciphers (format nil "~a:~a~a" as-ssl:*ssl-default-ciphers*
                                              session version)
                             :data "x"))))))
        (next (funcall steps))))
    (nreverse reused)))

(defmacro with-closing ((&rest servers) &body body)
  "BODY (making a list of steps) with SERVERS closed by a last step."
  `(append (progn ,@body)
           (list (lambda () (mapc #'as:close-tcp-server (list ,@servers))))))

(test servers-with-the-same-ticket-keys-resume-each-others-sessions
  (dolist (version '(:tlsv1.2 :tlsv1.3))
    (let ((a (ticket-key 1)))
      (destructuring-bind (first shared other back)
          (resumptions (lambda ()
                         (let ((s1 (ssl-echo-server :ticket-keys a))
                               (s2 (ssl-echo-server :ticket-keys (list a)))
                               (s3 (ssl-echo-server)))
                           (with-closing (s1 s2 s3) (list s1 s2 s3 s1))))
                       :version version :session (format nil "share-~a" version))
        (is-false first "~a: the first connection is a full handshake" version)
        (is-true shared "~a: a server with the same keys resumes" version)
        (is-false other "~a: a server with keys of its own does not" version)
        (is-false back "~a: nor can its ticket be used with the others" version)))))

(test rotating-ticket-keys-keeps-listed-keys-accepted
  (let* ((a (ticket-key 1)) (b (ticket-key 2)) (keys nil)
         (results
           (resumptions
            (lambda ()
              (let ((s1 (ssl-echo-server :ticket-keys a))
                    (s2 (ssl-echo-server :ticket-keys a)))
                (with-closing (s1 s2)
                  (list s1              ; full; its ticket is under a
                        (lambda ()
                          (setf (as-ssl:tcp-ssl-server-ticket-keys s1) (list b a)
                                keys (as-ssl:tcp-ssl-server-ticket-keys s1)))
                        s1              ; a is still accepted; renewed under b
                        s2              ; s2 lacks b: full, ticket under a
                        (lambda ()
                          (setf (as-ssl:tcp-ssl-server-ticket-keys s1) (list b)))
                        s1))))          ; a is gone
            :session "rotate")))
    (is (equal '(nil t nil nil) results))
    (is (equalp (list b a) keys))))

(test ticket-keys-are-checked
  (with-test-loop ()
    (signals as:argument-error (ssl-echo-server :ticket-keys (make-array 10 :element-type '(unsigned-byte 8))))
    (signals as:argument-error (as-ssl:tcp-ssl-connect "127.0.0.1" 1 nil :ticket-keys (ticket-key 1)))
    (let ((server (ssl-echo-server)))
      (is (null (as-ssl:tcp-ssl-server-ticket-keys server)) "own keys by default")
      (signals as:argument-error (setf (as-ssl:tcp-ssl-server-ticket-keys server) '(1 2)))
      (as:close-tcp-server server))))

;;;# 3. OCSP

(defun ocsp-round-trip (&key (server "server") staple (ocsp t))
  "A client asking with OCSP against a server stapling STAPLE; returns
(values reply client-event ocsp-octets)."
  (let* ((response nil)
         (r (ssl-round-trip :server-args (append (and staple (list :ocsp-response staple))
                                                 (server-args server))
                            :client-args (list :ca-file (cert "ca.pem") :ocsp ocsp
                                               :connect-cb
                                               (lambda (s)
                                                 (setf response
                                                       (as-ssl:ssl-socket-ocsp-response s)))))))
    (values (getf r :reply) (first (getf r :client-events)) response)))

(test ocsp-good-staple-passes-ask-and-require
  (dolist (ocsp '(t :require))
    (multiple-value-bind (reply event response)
        (ocsp-round-trip :staple (pathname (cert "ocsp-good.der")) :ocsp ocsp)
      (is (equal "ping" reply) "~s: ~a" ocsp event)
      (is (equalp (file-octets (cert "ocsp-good.der")) response)))))

(test ocsp-revoked-staple-fails
  (multiple-value-bind (reply event)
      (ocsp-round-trip :server "revoked" :staple (file-octets (cert "ocsp-revoked.der")))
    (is (null reply))
    (is (typep event 'as-ssl:tcp-ssl-verify-error))
    (is (search "revoked" (princ-to-string event)))))

(test ocsp-missing-staple-passes-ask-fails-require
  (is (equal "ping" (ocsp-round-trip :ocsp t)))
  (multiple-value-bind (reply event) (ocsp-round-trip :ocsp :require)
    (is (null reply))
    (is (typep event 'as-ssl:tcp-ssl-verify-error))
    (is (search "stapled no OCSP" (princ-to-string event)))))

(test ocsp-staple-from-a-function-of-the-socket
  (let* ((calls 0)
         (r (ssl-round-trip
             :server-args (list :ocsp-response
                                (lambda (socket)
                                  (incf calls)
                                  (assert (typep socket 'as-ssl:ssl-socket))
                                  (file-octets (cert "ocsp-good.der"))))
             :client-args (list :ca-file (cert "ca.pem") :ocsp :require))))
    (is (equal "ping" (getf r :reply)))
    (is (= 1 calls))))

(test ocsp-interop-openssl-s-client-status
  (let ((out nil))
    (with-test-loop ()
      (let* ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
                            (lambda (s d) (as:write-socket-data s d) (as:close-socket s))
                            :ocsp-response (cert "ocsp-good.der")
                            (server-args)))
             (p (run-openssl-client (as:tcp-server-port server) (format nil "hello~%")
                                    (list "-status" "-CAfile" (cert "ca.pem"))
                                    :quiet nil)))
        (wait-for-process p (lambda ()
                              (multiple-value-bind (o e) (process-output-text p)
                                (setf out (concatenate 'string o e)))
                              (as:close-tcp-server server)))))
    (is (search "OCSP Response Status: successful" out) "s_client printed: ~a" out)
    (is (search "Cert Status: good" out))))

(test ocsp-interop-openssl-s-server-status-file
  (let ((reply nil) (event nil))
    (with-openssl-server (port "-cert" (cert "server.pem") "-key" (cert "server.key")
                               "-cert_chain" (cert "int.pem")
                               "-status_file" (cert "ocsp-good.der") "-rev" "-quiet")
      (with-test-loop ()
        (as-ssl:tcp-ssl-connect "127.0.0.1" port
                                (lambda (s d) (setf reply (text d)) (as:close-socket s))
                                :event-cb (lambda (e) (setf event e))
                                :ca-file (cert "ca.pem") :ocsp :require
                                :data (format nil "olleh~%"))))
    (is (null event) "~a" event)
    (is (search "hello" reply))))

;;;# 4. CRLs

(test crl-revoked-server-leaf
  (let ((good (ssl-round-trip :client-args (list :ca-file (cert "ca.pem")
                                                 :crl-file (cert "int-crl.pem"))))
        (bad (ssl-round-trip :server-args (server-args "revoked")
                             :client-args (list :ca-file (cert "ca.pem")
                                                :crl-file (cert "int-crl.pem")))))
    (is (equal "ping" (getf good :reply)))
    (let ((e (first (getf bad :client-events))))
      (is (typep e 'as-ssl:tcp-ssl-verify-error))
      (is (search "revoked" (princ-to-string e)))
      (is (= 23 (as-ssl:tcp-ssl-verify-code e))))))

(test crl-revoked-client-leaf
  (flet ((mtls (client)
           (ssl-round-trip :server-args (list :verify-client :require
                                              :ca-file (cert "ca.pem")
                                              :crl-file (file-octets (cert "int-crl.pem")))
                           :client-args (list :ca-file (cert "ca.pem")
                                              :max-version :tlsv1.2
                                              :certificate (cert (format nil "~a-chain.pem" client))
                                              :key (cert (format nil "~a.key" client))))))
    (is (equal "ping" (getf (mtls "client") :reply)))
    (let* ((r (mtls "client-revoked"))
           (e (first (getf r :server-events))))
      (is (null (getf r :reply)))
      (is (typep e 'as-ssl:tcp-ssl-verify-error))
      (is (search "revoked" (princ-to-string e))))))

(test crl-chain-catches-a-revoked-intermediate
  (flet ((try (check)
           (ssl-round-trip :server-args (server-args "int2leaf")
                           :client-args (list :ca-file (cert "ca.pem")
                                              :crl-file (cert "crl-all.pem")
                                              :crl-check check))))
    (is (equal "ping" (getf (try :leaf) :reply)) "the leaf itself is fine")
    (let ((e (first (getf (try :chain) :client-events))))
      (is (typep e 'as-ssl:tcp-ssl-verify-error))
      (is (search "revoked" (princ-to-string e))))))

(test crl-arguments-are-checked
  (with-test-loop ()
    (signals as:argument-error (as-ssl:make-ssl-context :crl-check :leaf))
    (signals as:argument-error (as-ssl:make-ssl-context :crl-file (cert "int-crl.pem")
                                                        :crl-check :all))
    (signals as-ssl:tcp-ssl-error (as-ssl:make-ssl-context :crl-file (cert "ca.pem")))))

;;;# 5. Pins and verify callbacks

(defun pinned-round-trip (pins)
  (ssl-round-trip :client-args (list :ca-file (cert "ca.pem") :pin-sha256 pins)))

(test pin-of-the-leaf-or-the-intermediate-matches
  (is (equal "ping" (getf (pinned-round-trip (list (spki-pin "server.pem"))) :reply)))
  (is (equal "ping" (getf (pinned-round-trip (list (spki-pin "other-ca.pem")
                                                   (subseq (spki-pin "int.pem") 8)))
                          :reply))
      "a bare digest without sha256// works too"))

(test pin-mismatch-fails
  (let* ((r (pinned-round-trip (list (spki-pin "alpha.pem"))))
         (e (first (getf r :client-events))))
    (is (null (getf r :reply)))
    (is (typep e 'as-ssl:tcp-ssl-verify-error))
    (is (search "pin" (princ-to-string e)))))

(test pins-are-checked
  (with-test-loop ()
    (signals as:argument-error (as-ssl:make-ssl-context :pin-sha256 '("sha256//not base64!")))
    (signals as:argument-error (as-ssl:make-ssl-context :pin-sha256 '("AAAA")))
    (signals as:argument-error (as-ssl:make-ssl-context :pin-sha256 '(42)))))

(test verify-callback-accepts-with-the-chain
  (let* ((seen nil)
         (r (ssl-round-trip :client-args
                            (list :ca-file (cert "ca.pem")
                                  :verify-callback (lambda (socket chain)
                                                     (setf seen (list socket chain))
                                                     t)))))
    (is (equal "ping" (getf r :reply)))
    (destructuring-bind (socket chain) seen
      (is (eq socket (getf r :client)))
      (is (= 3 (length chain)) "leaf, intermediate, root")
      (is (search "CN=localhost" (getf (first chain) :subject)))
      (is (equal (as-ssl:ssl-socket-peer-certificate-chain socket) chain)))))

(test verify-callback-rejecting-or-erroring-fails-before-any-data
  (dolist (fn (list (lambda (s c) (declare (ignore s c)) nil)
                    (lambda (s c) (declare (ignore s c)) (error "not our server"))))
    (let* ((server-got nil)
           (r (ssl-round-trip :server-args (list :connect-cb (lambda (s) (declare (ignore s))))
                              :client-args (list :ca-file (cert "ca.pem")
                                                 :verify-callback fn
                                                 :connect-cb (lambda (s) (declare (ignore s))
                                                               (setf server-got :connected)))))
           (e (first (getf r :client-events))))
      (is (null (getf r :reply)))
      (is (null server-got) "the connect-cb did not run")
      (is (typep e 'as-ssl:tcp-ssl-verify-error))
      (is (or (search "refused by the :verify-callback" (princ-to-string e))
              (search "not our server" (princ-to-string e)))))))

(test verify-callback-cannot-pass-a-failed-verification
  (let* ((called nil)
         (r (ssl-round-trip :server-args (server-args "untrusted")
                            :client-args (list :ca-file (cert "ca.pem")
                                               :verify-callback (lambda (s c)
                                                                  (declare (ignore s c))
                                                                  (setf called t) t)))))
    (is (null (getf r :reply)))
    (is (null called))
    (is (typep (first (getf r :client-events)) 'as-ssl:tcp-ssl-verify-error))))

(test verify-callback-on-a-server-sees-the-client-chain
  (let* ((chain nil)
         (r (ssl-round-trip :server-args (list :verify-client :require :ca-file (cert "ca.pem")
                                               :verify-callback (lambda (s c)
                                                                  (declare (ignore s))
                                                                  (setf chain c) t))
                            :client-args (list :ca-file (cert "ca.pem")
                                               :certificate (cert "client-chain.pem")
                                               :key (cert "client.key")))))
    (is (equal "ping" (getf r :reply)))
    (is (search "casl test client" (getf (first chain) :subject)))))

;;;# 6. Credentials

(test pkcs12-with-the-right-and-a-wrong-password
  (let ((r (ssl-round-trip :server-args (list :pfx (cert "server.p12") :password "secret")
                           :client-args (list :ca-file (cert "ca.pem")))))
    (is (equal "ping" (getf r :reply))))
  (with-test-loop ()
    (let ((e (handler-case (as-ssl:tcp-ssl-server "127.0.0.1" 0 nil
                                                  :pfx (file-octets (cert "server.p12"))
                                                  :password "wrong")
               (as-ssl:tcp-ssl-error (e) e))))
      (is (typep e 'as-ssl:tcp-ssl-error))
      (is (search "wrong password" (princ-to-string e))))))

(test pem-credentials-from-octets
  (let ((r (ssl-round-trip :server-args (list :certificate (file-octets (cert "server-chain.pem"))
                                              :key (file-octets (cert "server.key")))
                           :client-args (list :ca-file (file-octets (cert "ca.pem"))))))
    (is (equal "ping" (getf r :reply)))))

(test one-server-serves-rsa-and-ecdsa-clients-each-their-kind
  (flet ((client (cipher)
           (let ((r (ssl-round-trip
                     :server-args (list :certificate (list (cert "server-chain.pem")
                                                           (cert "server-rsa-chain.pem"))
                                        :key (list (cert "server.key") (cert "server-rsa.key"))
                                        :ciphers "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
                     :client-args (list :ca-file (cert "ca.pem") :max-version :tlsv1.2
                                        :ciphers cipher))))
             (list (getf r :reply)
                   (as-ssl:ssl-socket-cipher (getf r :client))
                   (getf (as-ssl:ssl-socket-peer-certificate (getf r :client)) :serial)))))
    (destructuring-bind (reply cipher serial) (client "ECDHE-RSA-AES128-GCM-SHA256")
      (is (equal "ping" reply))
      (is (equal "ECDHE-RSA-AES128-GCM-SHA256" cipher))
      (is (equal (cert-serial "server-rsa.pem") serial)))
    (destructuring-bind (reply cipher serial) (client "ECDHE-ECDSA-AES128-GCM-SHA256")
      (is (equal "ping" reply))
      (is (equal "ECDHE-ECDSA-AES128-GCM-SHA256" cipher))
      (is (equal (cert-serial "server.pem") serial)))))

(test credential-arguments-are-checked
  (with-test-loop ()
    (signals as:argument-error (as-ssl:make-ssl-context :server t :certificate 42))
    (signals as:argument-error (as-ssl:make-ssl-context :server t :certificate (list (cert "server.pem"))
                                                        :key (list (cert "server.key")
                                                                   (cert "server.key"))))
    (signals as:argument-error (as-ssl:tcp-ssl-server "127.0.0.1" 0 nil))))

;;;# 7. Errors a user can act on

(test peer-closing-during-the-handshake-is-tcp-eof-and-tcp-ssl-error
  (let ((server-event nil) (client-event nil))
    (with-test-loop ()
      (let* ((tls (ssl-echo-server :event-cb (lambda (e) (setf server-event e))))
             (plain (as:tcp-server "127.0.0.1" 0
                                   (lambda (s d) (declare (ignore d)) (as:close-socket s))
                                   :event-cb (lambda (e) (declare (ignore e))))))
        ;; a client that connects and hangs up at once
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port tls) nil
                        :event-cb (lambda (e) (declare (ignore e)))
                        :connect-cb (lambda (s) (as:close-socket s)))
        ;; a server that reads the ClientHello and hangs up
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port plain) nil
                                :event-cb (lambda (e) (setf client-event e))
                                :ca-file (cert "ca.pem"))
        (as:with-delay (1)
          (as:close-tcp-server tls)
          (as:close-tcp-server plain))))
    (dolist (e (list server-event client-event))
      (is (typep e 'as:tcp-eof) "~a" e)
      (is (typep e 'as-ssl:tcp-ssl-error) "~a" e)
      (is (typep e 'as-ssl:tcp-ssl-handshake-eof)))
    ;; an upstream-style handler for tcp-eof matches it
    (is (eq :eof (handler-case (error client-event) (as:tcp-eof () :eof))))))

(test unknown-keywords-are-named
  (with-test-loop ()
    (flet ((message (thunk)
             (handler-case (progn (funcall thunk) nil)
               (as:argument-error (e) (princ-to-string e)))))
      (let ((m (message (lambda () (as-ssl:tcp-ssl-connect "127.0.0.1" 1 nil :certfile "x")))))
        (is (isearch ":certfile" m))
        (is (isearch ":certificate" m) "the keyword meant: ~a" m))
      (is (isearch ":cert" (message (lambda () (ssl-echo-server :cert "x")))))
      (is (isearch ":bogus" (message (lambda () (as-ssl:make-ssl-context :bogus 1)))))
      (let ((server (as:tcp-server "127.0.0.1" 0 nil)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                        :event-cb (lambda (e) (declare (ignore e)))
                        :connect-cb (lambda (s)
                                      (is (isearch ":verify-hostname"
                                                  (message (lambda ()
                                                             (as-ssl:start-tls s :verify-hostname t)))))
                                      (as:close-socket s :force t)
                                      (as:close-tcp-server server)))))))

(test bad-values-say-what-the-keyword-takes
  (with-test-loop ()
    (flet ((message (thunk)
             (handler-case (progn (funcall thunk) nil)
               (as:argument-error (e) (princ-to-string e)))))
      (let ((m (message (lambda () (as-ssl:tcp-ssl-connect "127.0.0.1" 1 nil
                                                           :ssl-options '(:bogus))))))
        (is (isearch ":ssl-options" m))
        (is (search "+ssl-op-no-tlsv1-3+" m) "names the constants: ~a" m)
        (is (not (search "CL-ASYNC-SSL::" m))))
      (let ((m (message (lambda () (as-ssl:tcp-ssl-connect nil 443 nil)))))
        (is (search "host" m))
        (is (not (search "CL-ASYNC-SSL::" m))))
      (let ((m (message (lambda () (as-ssl:tcp-ssl-connect "127.0.0.1" 1 nil :alpn '(1 2))))))
        (is (isearch ":alpn" m))
        (is (search "strings" m))))))

(test an-empty-system-trust-store-is-named
  (let* ((empty (uiop:run-program '("mktemp" "-d") :output '(:string :stripped t)))
         (old-file (uiop:getenv "SSL_CERT_FILE"))
         (old-dir (uiop:getenv "SSL_CERT_DIR"))
         (event nil))
    (unwind-protect
         (progn
           (setf (uiop:getenv "SSL_CERT_FILE") (format nil "~a/none.pem" empty)
                 (uiop:getenv "SSL_CERT_DIR") empty)
           (with-test-loop ()
             (let ((server (ssl-echo-server)))
               (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server) nil
                                       :event-cb (lambda (e) (setf event e)
                                                   (as:close-tcp-server server))
                                       ;; an option of its own: a fresh context
                                       :alpn '("empty-store-test")))))
      (if old-file (setf (uiop:getenv "SSL_CERT_FILE") old-file) (cffi:foreign-funcall "unsetenv" :string "SSL_CERT_FILE" :int))
      (if old-dir (setf (uiop:getenv "SSL_CERT_DIR") old-dir) (cffi:foreign-funcall "unsetenv" :string "SSL_CERT_DIR" :int))
      (uiop:run-program (list "rm" "-rf" empty)))
    (is (typep event 'as-ssl:tcp-ssl-verify-error))
    (is (search "ca-certificates" (princ-to-string event)) "~a" event)))

(test core-functions-name-bad-arguments-too
  (with-test-loop ()
    (flet ((message (thunk)
             (handler-case (progn (funcall thunk) nil)
               (as:argument-error (e) (princ-to-string e)))))
      (is (isearch ":read-timout" (message (lambda () (as:tcp-connect "127.0.0.1" 1 nil
                                                                       :read-timout 3)))))
      (is (isearch ":read-timeout" (message (lambda () (as:tcp-connect "127.0.0.1" 1 nil
                                                                        :read-timout 3))))
          "the keyword meant is named")
      (is (isearch ":backlg" (message (lambda () (as:tcp-server "127.0.0.1" 0 nil :backlg 5)))))
      (is (isearch "host" (message (lambda () (as:tcp-connect nil 80 nil)))))
      (let ((server (as:tcp-server "127.0.0.1" 0 nil)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                        :event-cb (lambda (e) (declare (ignore e)))
                        :connect-cb
                        (lambda (s)
                          (let ((m (message (lambda () (as:write-socket-data s 12345)))))
                            (is (isearch "data" m))
                            (is (isearch "string" m) "~a" m))
                          (is (isearch "octet" (message (lambda ()
                                                          (as:write-socket-data s #(1 2 300))))))
                          (as:close-socket s)
                          (as:close-tcp-server server)))))))

;;;# Several loops on one port (SO_REUSEPORT)

(test reuse-port-spreads-connections-over-two-loops-and-sessions-resume
  (let* ((keys (ticket-key 7))
         (counts (make-array 2 :initial-element 0))
         (notifiers (make-array 2 :initial-element nil))
         (port nil)
         (lock (bt:make-lock)) (cv (bt:make-condition-variable))
         (threads
           (loop :for i :below 2
                 :collect
                 (let ((i i))
                   (bt:make-thread
                    (lambda ()
                      (as:with-event-loop ()
                        (let ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1"
                                             (if (zerop i)
                                                 0
                                                 (bt:with-lock-held (lock)
                                                   (loop :until port
                                                         :do (bt:condition-wait cv lock))
                                                   port))
                                             (lambda (s d) (as:write-socket-data s d))
                                             :reuse-port t :ticket-keys keys
                                             :connect-cb (lambda (s) (declare (ignore s))
                                                           (incf (aref counts i)))
                                             (server-args))))
                          (setf (aref notifiers i)
                                (as:make-notifier (lambda () (as:close-tcp-server server))))
                          (when (zerop i)
                            (bt:with-lock-held (lock)
                              (setf port (as:tcp-server-port server))
                              (bt:condition-notify cv))))))
                    :name (format nil "reuse-port loop ~a" i)))))
         (reused 0) (done 0))
    (loop :repeat 500 :until (and port (every #'identity notifiers)) :do (sleep 0.01))
    (unwind-protect
         (with-test-loop (:timeout 30)
           (labels ((next (n)
                      (if (>= n 24)
                          nil
                          (as-ssl:tcp-ssl-connect
                           "127.0.0.1" port
                           (lambda (s d) (declare (ignore d))
                             (incf done)
                             (when (as-ssl:ssl-socket-session-reused-p s) (incf reused))
                             (as:with-delay (0.02) (as:close-socket s) (next (1+ n))))
                           :ca-file (cert "ca.pem") :session "reuse-port" :data "x"
                           :ciphers (format nil "~a:reuse-port" as-ssl:*ssl-default-ciphers*)))))
             (next 0)))
      (loop :for n :across notifiers :when n :do (as:trigger-notifier n))
      (mapc #'bt:join-thread threads))
    (is (= 24 done))
    (is (plusp (aref counts 0)) "loop 0 took connections: ~a" counts)
    (is (plusp (aref counts 1)) "loop 1 took connections: ~a" counts)
    (is (>= reused 20) "sessions resume whichever loop takes them: ~a of 24" reused)))
