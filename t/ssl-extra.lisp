;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; ssl-extra.lisp --- beyond the seed: ALPN, mutual TLS, server SNI,
;;;; session resumption, STARTTLS, peer certificates, key logging.

(in-package #:cl-async-ssl-test)

(def-suite ssl-extra :in cl-async-ssl-test
  :description "ALPN, mTLS, SNI, resumption, STARTTLS, peer certs, key log.")
(in-suite ssl-extra)

(defun ca () (list :ca-file (cert "ca.pem")))

;;;# ALPN

(defun alpn-pair (server-alpn client-alpn)
  "Returns (values client-alpn server-alpn reply)."
  (let ((server-alpn-seen :unset))
    (let ((r (ssl-round-trip :server-args (and server-alpn (list :alpn server-alpn))
                             :client-args (append (ca) (and client-alpn
                                                            (list :alpn client-alpn))))))
      (let ((s (first (getf r :server-sockets))))
        (when s (setf server-alpn-seen (as-ssl:ssl-socket-alpn s))))
      (values (as-ssl:ssl-socket-alpn (getf r :client)) server-alpn-seen
              (getf r :reply)))))

(test alpn-match
  (multiple-value-bind (client server reply) (alpn-pair '("h2" "http/1.1") '("http/1.1" "h2"))
    (is (equal "h2" client) "the server's preference wins")
    (is (equal "h2" server))
    (is (equal "ping" reply))))

(test alpn-no-overlap-proceeds-without
  (multiple-value-bind (client server reply) (alpn-pair '("h2") '("spdy/3"))
    (is (null client))
    (is (null server))
    (is (equal "ping" reply))))

(test alpn-on-one-side-only
  (multiple-value-bind (client server reply) (alpn-pair '("h2") nil)
    (is (null client)) (is (null server)) (is (equal "ping" reply)))
  (multiple-value-bind (client server reply) (alpn-pair nil '("h2"))
    (is (null client)) (is (null server)) (is (equal "ping" reply))))

(test alpn-interop-openssl-s-server
  (let ((alpn nil))
    (with-openssl-server (port "-cert" (cert "server.pem") "-key" (cert "server.key")
                               "-cert_chain" (cert "int.pem") "-alpn" "http/1.1,h2"
                               "-rev" "-quiet")
      (with-test-loop ()
        (as-ssl:tcp-ssl-connect "127.0.0.1" port
                                (lambda (s d) (declare (ignore d))
                                  (setf alpn (as-ssl:ssl-socket-alpn s))
                                  (as:close-socket s))
                                :ca-file (cert "ca.pem") :alpn '("h2")
                                :data (format nil "x~%"))))
    (is (equal "h2" alpn))))

(test alpn-interop-openssl-s-client
  (let ((alpn nil) (out nil))
    (with-test-loop ()
      (let* ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
                            (lambda (s d)
                              (setf alpn (as-ssl:ssl-socket-alpn s))
                              (as:write-socket-data s d)
                              (as:close-socket s))
                            :alpn '("h2" "http/1.1")
                            (server-args)))
             (p (run-openssl-client (as:tcp-server-port server) (format nil "alpn~%")
                                    (list "-alpn" "http/1.1" "-CAfile" (cert "ca.pem")))))
        (wait-for-process p (lambda ()
                              (setf out (process-output-text p))
                              (as:close-tcp-server server)))))
    (is (equal "http/1.1" alpn))
    (is (search "alpn" out))))

;;;# Mutual TLS

(defun mtls (verify-client &rest client-args)
  "Returns (values reply client-event server-event server-peer-subject)."
  (let ((r (ssl-round-trip :server-args (list :verify-client verify-client
                                              :ca-file (cert "ca.pem"))
                           :client-args (append (ca) client-args))))
    (let ((s (first (getf r :server-sockets))))
      (values (getf r :reply) (first (getf r :client-events))
              (first (getf r :server-events))
              (and s (getf (as-ssl:ssl-socket-peer-certificate s) :subject))))))

(test mtls-require-without-certificate-fails
  (multiple-value-bind (reply cev sev) (mtls :require)
    (is (null reply))
    (is (typep cev 'as-ssl:tcp-ssl-error) "client: ~a" cev)
    (is (typep sev 'as-ssl:tcp-ssl-verify-error) "server: ~a" sev)))

(test mtls-require-untrusted-certificate-fails
  (multiple-value-bind (reply cev sev)
      (mtls :require :certificate (cert "client-untrusted.pem")
                     :key (cert "client-untrusted.key"))
    (is (null reply))
    (is (typep cev 'as-ssl:tcp-ssl-error) "client: ~a" cev)
    (is (typep sev 'as-ssl:tcp-ssl-verify-error) "server: ~a" sev)))

(test mtls-require-good-certificate-passes
  (multiple-value-bind (reply cev sev subject)
      (mtls :require :certificate (cert "client-chain.pem") :key (cert "client.key"))
    (is (equal "ping" reply))
    (is (null cev))
    (is (or (null sev) (typep sev 'as:tcp-eof)))
    (is (search "CN=casl test client" subject) "subject ~a" subject)))

(test mtls-optional-without-certificate-passes
  (multiple-value-bind (reply cev) (mtls :optional)
    (is (equal "ping" reply))
    (is (null cev))))

;;;# Server SNI

(defun sni-peer (server-args client-args host-name)
  "Connects to 127.0.0.1 asking for HOST-NAME; returns the subject of the
certificate the server presented and the server-side requested name."
  (let ((r (ssl-round-trip :server-args server-args
                           :client-args (list* :hostname host-name client-args))))
    (values (getf (as-ssl:ssl-socket-peer-certificate (getf r :client)) :subject)
            (let ((s (first (getf r :server-sockets))))
              (and s (as-ssl:ssl-socket-server-name s)))
            (getf r :reply))))

(defparameter *sni-list*
  (list (list "alpha.test" (cert "alpha-chain.pem") (cert "alpha.key"))
        (list "*.beta.test" (cert "beta-chain.pem") (cert "beta.key"))
        (list "beta.test" (cert "beta-chain.pem") (cert "beta.key"))))

(test sni-list-picks-certificates
  (let ((args (list :sni *sni-list*)))
    (multiple-value-bind (subject name reply) (sni-peer args (ca) "alpha.test")
      (is (search "CN=alpha.test" subject)) (is (equal "alpha.test" name))
      (is (equal "ping" reply)))
    (multiple-value-bind (subject name) (sni-peer args (ca) "www.beta.test")
      (is (search "CN=beta.test" subject)) (is (equal "www.beta.test" name)))
    (multiple-value-bind (subject name) (sni-peer args (ca) "localhost")
      (is (search "CN=localhost" subject) "the default certificate: ~a" subject)
      (is (equal "localhost" name)))))

(test sni-function-picks-contexts
  (let* ((alpha (as-ssl:make-ssl-context :server t :certificate (cert "alpha-chain.pem")
                                         :key (cert "alpha.key")))
         (asked '())
         (args (list :sni (lambda (name)
                            (push name asked)
                            (and (equal name "alpha.test") alpha)))))
    (unwind-protect
         (progn
           (is (search "CN=alpha.test" (sni-peer args (ca) "alpha.test")))
           (is (search "CN=localhost" (sni-peer args (ca) "localhost")))
           (is (equal '("localhost" "alpha.test") asked)))
      (as-ssl:free-ssl-context alpha))))

(test sni-interop-openssl-s-client
  (let ((out nil))
    (with-test-loop ()
      (let* ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
                            (lambda (s d) (as:write-socket-data s d) (as:close-socket s))
                            :sni *sni-list* (server-args)))
             (p (run-openssl-client (as:tcp-server-port server) (format nil "sni~%")
                                    (list "-servername" "alpha.test"
                                          "-verify_hostname" "alpha.test"
                                          "-CAfile" (cert "ca.pem")
                                          "-verify_return_error"))))
        (wait-for-process p (lambda ()
                              (setf out (process-output-text p))
                              (as:close-tcp-server server)))))
    (is (search "sni" out) "s_client verified alpha.test: ~a" out)))

;;;# Session resumption

(defun resumption-pair (version &rest client-args)
  "Two connections to one server with the same client settings; returns
the reused-p of the second (and of the first)."
  (let ((reused '()))
    (with-test-loop ()
      (let* ((server (ssl-echo-server :max-version version))
             (port (as:tcp-server-port server)))
        (labels ((connect (n)
                   (apply #'as-ssl:tcp-ssl-connect "127.0.0.1" port
                          (lambda (s d) (declare (ignore d))
                            (push (as-ssl:ssl-socket-session-reused-p s) reused)
                            (as:close-socket s)
                            (if (< n 2)
                                (as:with-delay (0.05) (connect (1+ n)))
                                (as:close-tcp-server server)))
                          :ca-file (cert "ca.pem") :data "x"
                          ;; a setting of its own: a fresh cached context
                          :ciphers (format nil "~a:~a" as-ssl:*ssl-default-ciphers*
                                           version)
                          client-args)))
          (connect 1))))
    (values (first reused) (second reused))))

(test resumption-tls12
  (multiple-value-bind (second first) (resumption-pair :tlsv1.2)
    (is-false first) (is-true second)))

(test resumption-tls13
  (multiple-value-bind (second first) (resumption-pair :tlsv1.3)
    (is-false first) (is-true second)))

(test session-nil-gives-full-handshakes
  (multiple-value-bind (second first) (resumption-pair :tlsv1.3 :session nil)
    (is-false first) (is-false second)))

;;;# STARTTLS

(test starttls-both-sides
  "Plaintext STARTTLS exchange, then TLS on both sides; data intact."
  (let ((server-got '()) (client-got nil) (server-proto nil))
    (with-test-loop ()
      (let ((server nil))
        (setf server
              (as:tcp-server "127.0.0.1" 0
                             (lambda (s d)
                               (let ((line (text d)))
                                 (push line server-got)
                                 (cond ((search "STARTTLS" line)
                                        (as:write-socket-data s (format nil "220 go ahead~c~c"
                                                                        #\Return #\Newline))
                                        (apply #'as-ssl:start-tls s :server t (server-args)))
                                       (t
                                        (setf server-proto (as-ssl:ssl-socket-protocol s))
                                        (as:write-socket-data s (concatenate 'string "secure:" line))))))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d)
                          (let ((line (text d)))
                            (cond ((typep s 'as-ssl:ssl-socket)
                                   (setf client-got line)
                                   (as:close-socket s)
                                   (as:close-tcp-server server))
                                  ((search "220" line)
                                   (as-ssl:start-tls s :ca-file (cert "ca.pem")
                                                       :connect-cb (lambda (s)
                                                                     (as:write-socket-data s "secret"))))
                                  (t (error "unexpected ~s" line)))))
                        :data (format nil "STARTTLS~c~c" #\Return #\Newline))))
    (is (equal (list (format nil "STARTTLS~c~c" #\Return #\Newline) "secret")
               (reverse server-got)))
    (is (equal "TLSv1.3" server-proto))
    (is (equal "secure:secret" client-got))))

(defun smtp-line (s text)
  (as:write-socket-data s (format nil "~a~c~c" text #\Return #\Newline)))

(test starttls-interop-openssl-s-client-smtp
  "`openssl s_client -starttls smtp' against an SMTP-like prelude on our
server: greeting, EHLO, STARTTLS, then TLS."
  (let ((out nil) (tls-data nil))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0
                                    (lambda (s d)
                                      (let ((line (text d)))
                                        (cond ((typep s 'as-ssl:ssl-socket)
                                               (setf tls-data line)
                                               (as:write-socket-data s d)
                                               (as:close-socket s))
                                              ((search "EHLO" line)
                                               (smtp-line s "250-casl.test")
                                               (smtp-line s "250 STARTTLS"))
                                              ((search "STARTTLS" line)
                                               (smtp-line s "220 2.0.0 Ready to start TLS")
                                               (apply #'as-ssl:start-tls s :server t
                                                      (server-args))))))
                                    :connect-cb (lambda (s) (smtp-line s "220 casl.test ESMTP"))))
             (p (run-openssl-client (as:tcp-server-port server) (format nil "MAIL FROM:<a@b>~%")
                                    (list "-starttls" "smtp" "-CAfile" (cert "ca.pem")
                                          "-verify_return_error"))))
        (wait-for-process p (lambda ()
                              (setf out (process-output-text p))
                              (as:close-tcp-server server)))))
    (is (search "MAIL FROM" tls-data) "our server read over TLS: ~s" tls-data)
    (is (search "MAIL FROM" out))))

;;;# Peer certificates

(test peer-certificate-fields
  (let* ((r (ssl-round-trip :client-args (ca)))
         (peer (as-ssl:ssl-socket-peer-certificate (getf r :client)))
         (fingerprint (string-trim '(#\Newline)
                                   (uiop:run-program
                                    (list "openssl" "x509" "-in" (cert "server.pem")
                                          "-noout" "-fingerprint" "-sha256")
                                    :output :string))))
    (is (search "CN=localhost" (getf peer :subject)))
    (is (search "CN=casl test intermediate" (getf peer :issuer)))
    (is (member "localhost" (getf peer :sans) :test #'equal))
    (is (member "127.0.0.1" (getf peer :sans) :test #'equal))
    (is (member "::1" (getf peer :sans) :test #'equal))
    (is (< (getf peer :not-before) (get-universal-time) (getf peer :not-after)))
    (is (stringp (getf peer :serial)))
    (is (search (getf peer :sha256) fingerprint) "~a vs ~a" (getf peer :sha256) fingerprint)
    (is (search "BEGIN CERTIFICATE" (getf peer :pem)))))

(test no-peer-certificate-from-a-plain-client
  (let* ((r (ssl-round-trip :client-args (ca)))
         (s (first (getf r :server-sockets))))
    (is (null (as-ssl:ssl-socket-peer-certificate s)))))

;;;# Key logging

(defun keylog-lines (file)
  (with-open-file (in file :if-does-not-exist nil)
    (and in (loop :for line := (read-line in nil) :while line :collect line))))

(test keylog-writes-nss-lines
  (let ((file (format nil "~akeylog-~a.txt" (certs-dir) (random 1000000))))
    (let ((as-ssl:*ssl-keylog-file* file))
      (ssl-round-trip :client-args (append (ca) (list :ciphers "HIGH:!aNULL:keylog-test"))))
    (let ((lines (keylog-lines file)))
      (is (some (lambda (l) (search "CLIENT_HANDSHAKE_TRAFFIC_SECRET" l)) lines))
      (is (some (lambda (l) (search "SERVER_TRAFFIC_SECRET_0" l)) lines)))
    (let ((as-ssl:*ssl-keylog-file* file))
      (ssl-round-trip :client-args (append (ca) (list :max-version :tlsv1.2
                                                      :ciphers "HIGH:!aNULL:keylog12"))))
    (is (some (lambda (l) (search "CLIENT_RANDOM" l)) (keylog-lines file)))))

(test keylog-off-by-default
  "Without the setting nothing is written: a file that received lines gets
no more once *ssl-keylog-file* is unbound."
  (let ((file (format nil "~akeylog-off-~a.txt" (certs-dir) (random 1000000))))
    (let ((as-ssl:*ssl-keylog-file* file))
      (ssl-round-trip :client-args (ca)))
    (let ((before (length (keylog-lines file))))
      (is (plusp before))
      (is (null (as-ssl::keylog-path)) "no SSLKEYLOGFILE in the test environment")
      (ssl-round-trip :client-args (ca))
      (is (= before (length (keylog-lines file)))))))

;;;# Saved images

(test works-in-a-saved-image
  "A program saved with save-lisp-and-die reloads the C library at start-up
and runs a TLS echo (callbacks are handed to C when the loop starts)."
  (let* ((dir (certs-dir))
         (image (format nil "~acasl-image-~a" dir (random 1000000)))
         (script (format nil "~asave-image.lisp" dir)))
    (with-open-file (s script :direction :output :if-exists :supersede)
      (let ((*print-readably* nil))
        (format s "(require :asdf)~%(push ~s asdf:*central-registry*)~%~
                   (asdf:load-system :cl-async-ssl)~%~
                   (defun main ()~%  (let ((got nil))~%    (as:with-event-loop ()~%      ~
                   (let ((server (as-ssl:tcp-ssl-server \"127.0.0.1\" 0 ~
                   (lambda (s d) (as:write-socket-data s d)) ~
                   :certificate ~s :key ~s)))~%        ~
                   (as-ssl:tcp-ssl-connect \"127.0.0.1\" (as:tcp-server-port server) ~
                   (lambda (s d) (setf got (babel:octets-to-string d)) ~
                   (as:close-socket s) (as:close-tcp-server server)) ~
                   :ca-file ~s :data \"image ok\")))~%    ~
                   (format t \"~~a~~%\" got)))~%~
                   (sb-ext:save-lisp-and-die ~s :toplevel (lambda () (main) (sb-ext:exit)) ~
                   :executable t)~%"
                (namestring (asdf:system-source-directory :cl-async-ssl))
                (cert "server-chain.pem") (cert "server.key") (cert "ca.pem") image)))
    (uiop:run-program (list "sbcl" "--noinform" "--non-interactive" "--load" script)
                      :output nil :error-output nil :ignore-error-status t)
    (is-true (probe-file image) "the image was saved")
    (when (probe-file image)
      (let ((out (uiop:run-program (list image) :output :string :ignore-error-status t)))
        (is (search "image ok" out) "the image printed ~s" out))
      (delete-file image))))
