;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; signal-tls.lisp --- a SIGINT from another process ends a loop that
;;;; runs a TLS server, cleanly, through a signal handler.

(in-package #:cl-async-ssl-test)

(def-suite signal-tls :in cl-async-ssl-test
  :description "Signal handlers with TLS traffic.")
(in-suite signal-tls)

(test sigint-from-another-process-ends-a-tls-server-loop
  "`kill -INT <our pid>' run as a separate process while a TLS server
serves a client: the handler closes the server and exits the loop; SBCL's
SIGINT handler is back afterwards."
  (certs-dir)
  (let ((sbcl (disposition as:+sigint+))
        (got nil) (reply nil) (server-closed nil) (exit-ran nil))
    (with-test-loop (:timeout 15)
      (let ((server (ssl-echo-server)))
        (as:add-event-loop-exit-callback (lambda () (setf exit-ran t)))
        (as:signal-handler
         as:+sigint+
         (lambda (sig)
           (setf got sig)
           (as:close-tcp-server server)
           (setf server-closed t)
           (as:exit-event-loop)))
        (as-ssl:tcp-ssl-connect
         "127.0.0.1" (as:tcp-server-port server)
         (lambda (socket data)
           (declare (ignore socket))
           (setf reply (text data))
           ;; The server works; now the other process sends the signal.
           (as:delay (lambda ()
                       (uiop:run-program (list "kill" "-INT"
                                               (princ-to-string (getpid)))))
                     :time 0.01))
         :ca-file (cert "ca.pem")
         :data "ping")))
    (is (equal "ping" reply))
    (is (eql as:+sigint+ got))
    (is-true server-closed)
    (is-true exit-ran)
    (is (equal sbcl (disposition as:+sigint+)) "SBCL's SIGINT handler is back")
    (is (= 0 (cl-async-ffi:tls-live-count)))))
