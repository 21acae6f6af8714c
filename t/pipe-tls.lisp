;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; pipe-tls.lisp --- STARTTLS over a pipe (unix domain socket).

(in-package #:cl-async-ssl-test)

(def-suite pipe-tls :in cl-async-ssl-test :description "TLS over pipes.")
(in-suite pipe-tls)

(test start-tls-over-pipe
  "Both ends of a pipe upgrade to TLS in place: the client verifies the
server's certificate (by :hostname), data crosses encrypted both ways, and
the sockets are SSL-SOCKETs that are still PIPEs."
  (with-temp-dir (dir)
    (let ((path (concatenate 'string dir "tls"))
          (server-got nil) (client-got nil) (client-events '())
          (server-sock nil) (client-sock nil) (protocol nil))
      (with-test-loop ()
        (let ((server nil))
          (setf server
                (as:pipe-server path
                                (lambda (s d)
                                  (setf server-got (text d))
                                  (as:write-socket-data s (format nil "secure: ~a" (text d))))
                                :connect-cb
                                (lambda (s)
                                  (setf server-sock s)
                                  (apply #'as-ssl:start-tls s :server t (server-args)))))
          (as:pipe-connect path
                           (lambda (s d)
                             (setf client-got (text d))
                             (as:close-socket s)
                             (as:close-socket-server server))
                           :event-cb (lambda (e)
                                       (push e client-events)
                                       (as:close-socket-server server))
                           :connect-cb
                           (lambda (s)
                             (as-ssl:start-tls s :ca-file (cert "ca.pem")
                                                 :hostname "localhost"
                                                 :connect-cb
                                                 (lambda (s)
                                                   (setf client-sock s
                                                         protocol (as-ssl:ssl-socket-protocol s))
                                                   (as:write-socket-data s "hi")))))))
      (is (null client-events) "client events: ~a" client-events)
      (is (equal "hi" server-got))
      (is (equal "secure: hi" client-got))
      (is (typep client-sock 'as-ssl:ssl-socket))
      (is (typep client-sock 'as:pipe))
      (is (typep server-sock 'as-ssl:ssl-socket))
      (is (typep server-sock 'as:pipe))
      (is (member protocol '("TLSv1.3" "TLSv1.2") :test #'equal))
      (is (search path (princ-to-string client-sock))))))

(test start-tls-over-pipe-verifies
  "Over a pipe too, a certificate from an unknown CA fails the handshake
with TCP-SSL-VERIFY-ERROR."
  (with-temp-dir (dir)
    (let ((path (concatenate 'string dir "tls")) (events '()) (reads 0))
      (with-test-loop ()
        (let ((server nil))
          (setf server
                (as:pipe-server path (lambda (s d) (declare (ignore s d)))
                                :connect-cb (lambda (s)
                                              (apply #'as-ssl:start-tls s :server t
                                                     (server-args)))))
          (as:pipe-connect path (lambda (s d) (declare (ignore s d)) (incf reads))
                           :event-cb (lambda (e)
                                       (push e events)
                                       (as:close-socket-server server))
                           :connect-cb (lambda (s)
                                         (as-ssl:start-tls s :hostname "localhost")))))
      (is (zerop reads))
      (is (= 1 (length events)))
      (is (typep (first events) 'as-ssl:tcp-ssl-verify-error)))))
