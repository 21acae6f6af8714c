;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; systems.lisp --- the two ASDF systems in a fresh SBCL: cl-async alone
;;;; has no TLS package and echoes over TCP; cl-async-ssl loaded into the
;;;; same image then echoes over TLS.

(in-package #:cl-async-ssl-test)

(def-suite systems :in cl-async-ssl-test
  :description "Loading cl-async, then cl-async-ssl, in a fresh SBCL.")
(in-suite systems)

(defparameter *child-timeout* 300
  "Seconds a child SBCL may run (loading compiles the systems when their
fasls are stale).")

(defun make-temp-dir (prefix)
  "A fresh directory /tmp/PREFIX-XXXXXX; returns its name with a slash."
  (concatenate 'string
               (uiop:run-program (list "mktemp" "-d" (format nil "/tmp/~a-XXXXXX" prefix))
                                 :output '(:string :stripped t))
               "/"))

(defun run-sbcl-script (script output timeout)
  "Runs `sbcl --non-interactive --load SCRIPT' with stdout and stderr in
the file OUTPUT, killing it after TIMEOUT seconds.  Returns (values
exit-status finished-p output-text); the child is always reaped."
  (let* ((p (uiop:launch-program (list "sbcl" "--noinform" "--non-interactive"
                                       "--load" script)
                                 :input nil
                                 :output output :if-output-exists :supersede
                                 :error-output :output))
         (finished (loop :repeat (* 20 timeout)
                         :while (uiop:process-alive-p p)
                         :do (sleep 0.05)
                         :finally (return (not (uiop:process-alive-p p))))))
    (unless finished
      (uiop:terminate-process p :urgent t))
    (let ((status (uiop:wait-process p)))
      (values status finished
              (if (probe-file output) (uiop:read-file-string output) "")))))

(defun write-systems-script (file root certs)
  "Writes the child's script to FILE: ROOT is the checkout, CERTS the
directory t/make-certs.sh filled.  It prints a line \"CASL-MARK ...\" after
each step it checked."
  (with-open-file (s file :direction :output :if-exists :supersede)
    (let ((*print-readably* nil))
      (format s "(require :asdf)
(push ~s asdf:*central-registry*)
(asdf:load-system :cl-async)
(when (find-package \"CL-ASYNC-SSL\")
  (error \"the package CL-ASYNC-SSL exists after loading cl-async alone\"))
(when (asdf:component-loaded-p \"cl-async-ssl\")
  (error \"loading cl-async loaded cl-async-ssl\"))
(format t \"~~&CASL-MARK ssl-absent~~%\")
(let ((reply nil))
  (as:with-event-loop ()
    (as:unref (as:delay (lambda () (as:exit-event-loop)) :time 20))
    (let ((server (as:tcp-server \"127.0.0.1\" 0
                                 (lambda (s d) (as:write-socket-data s d)))))
      (as:tcp-connect \"127.0.0.1\" (as:tcp-server-port server)
                      (lambda (s d)
                        (setf reply (babel:octets-to-string d))
                        (as:close-socket s)
                        (as:close-tcp-server server))
                      :event-cb (lambda (e)
                                  (format t \"~~&tcp event: ~~a~~%\" e)
                                  (as:close-tcp-server server))
                      :data \"tcp echo\")))
  (format t \"~~&CASL-MARK tcp-echo ~~a~~%\" reply))
(asdf:load-system :cl-async-ssl)
(format t \"~~&CASL-MARK ssl-loaded ~~a~~%\"
        (and (find-package \"CL-ASYNC-SSL\") (find-package \"CL-ASYNC\") t))
(let ((reply nil) (protocol nil))
  (as:with-event-loop ()
    (as:unref (as:delay (lambda () (as:exit-event-loop)) :time 20))
    (let ((server (as-ssl:tcp-ssl-server \"127.0.0.1\" 0
                                         (lambda (s d) (as:write-socket-data s d))
                                         :certificate ~s :key ~s)))
      (as-ssl:tcp-ssl-connect \"127.0.0.1\" (as:tcp-server-port server)
                              (lambda (s d)
                                (setf reply (babel:octets-to-string d)
                                      protocol (as-ssl:ssl-socket-protocol s))
                                (as:close-socket s)
                                (as:close-tcp-server server))
                              :event-cb (lambda (e)
                                          (format t \"~~&tls event: ~~a~~%\" e)
                                          (as:close-tcp-server server))
                              :ca-file ~s
                              :data \"tls echo\")))
  (format t \"~~&CASL-MARK tls-echo ~~a ~~a~~%\" reply protocol))
"
              root
              (concatenate 'string certs "server-chain.pem")
              (concatenate 'string certs "server.key")
              (concatenate 'string certs "ca.pem")))))

(test cl-async-alone-then-cl-async-ssl-in-a-fresh-sbcl
  "A fresh SBCL loads cl-async alone: CL-ASYNC-SSL does not exist and a TCP
echo works; then cl-async-ssl is loaded into the same image and a TLS echo
works (certificates from t/make-certs.sh in a temporary directory)."
  (let ((dir (make-temp-dir "casl-systems"))
        (root (namestring (asdf:system-source-directory :cl-async))))
    (unwind-protect
         (let ((script (concatenate 'string dir "systems.lisp"))
               (certs (concatenate 'string dir "certs/")))
           (uiop:run-program (list "sh" (concatenate 'string root "t/make-certs.sh") certs)
                             :output nil :error-output :output)
           (write-systems-script script root certs)
           (multiple-value-bind (status finished output)
               (run-sbcl-script script (concatenate 'string dir "output.txt")
                                *child-timeout*)
             (is-true finished "the child SBCL finished within ~a s" *child-timeout*)
             (is (eql 0 status) "the child exited with status 0, not ~a:~%~a"
                 status output)
             (is (search "CASL-MARK ssl-absent" output)
                 "no CL-ASYNC-SSL after loading cl-async alone:~%~a" output)
             (is (search "CASL-MARK tcp-echo tcp echo" output)
                 "the TCP echo under cl-async alone:~%~a" output)
             (is (search "CASL-MARK ssl-loaded T" output)
                 "both packages after loading cl-async-ssl:~%~a" output)
             (is (search "CASL-MARK tls-echo tls echo TLSv1.3" output)
                 "the TLS echo after loading cl-async-ssl:~%~a" output)))
      (uiop:run-program (list "rm" "-rf" dir) :ignore-error-status t))))
