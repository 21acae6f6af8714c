;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; ssl-util.lisp --- certificates and OpenSSL peers for the TLS suites.

(in-package #:cl-async-ssl-test)

(defvar *certs-dir* nil
  "Directory holding the test certificates (made by t/make-certs.sh).")

(defun test-root ()
  (asdf:system-relative-pathname :cl-async-ssl "t/"))

(defun certs-dir ()
  "Makes the test certificates once per process, in a fresh temporary
directory removed at exit."
  (or *certs-dir*
      (let ((dir (uiop:run-program '("mktemp" "-d" "/tmp/casl-certs-XXXXXX")
                                   :output '(:string :stripped t))))
        (uiop:run-program (list "sh" (namestring (merge-pathnames "make-certs.sh" (test-root)))
                                dir)
                          :output nil :error-output :output)
        (push (lambda () (uiop:run-program (list "rm" "-rf" dir) :ignore-error-status t))
              sb-ext:*exit-hooks*)
        (setf *certs-dir* (concatenate 'string dir "/")))))

(defun cert (name)
  "The path of test certificate file NAME."
  (concatenate 'string (certs-dir) name))

(defun server-args (&optional (name "server"))
  "tcp-ssl-server keywords for the certificate NAME (its chain file when it
has one, and its key)."
  (let ((chain (cert (format nil "~a-chain.pem" name))))
    (list :certificate (if (probe-file chain) chain (cert (format nil "~a.pem" name)))
          :key (cert (format nil "~a.key" name)))))

(defun ssl-echo-server (&rest args)
  "A TLS echo server on 127.0.0.1 (any free port) with the test server
certificate; ARGS override or add tcp-ssl-server keywords."
  (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
         (lambda (s d) (as:write-socket-data s d))
         (append args (server-args))))

(defun ssl-round-trip (&key (server-args '()) (client-args '()) (host "127.0.0.1")
                         (data "ping") (timeout 10))
  "Starts a TLS echo server, connects a client, sends DATA and waits for
the echo.  Returns a plist: :reply, :client-events, :server-events,
:client (the socket), :server-sockets."
  (let ((reply nil) (cevents '()) (sevents '()) (client nil) (ssocks '()))
    (with-test-loop (:timeout timeout)
      (let ((server (apply #'as-ssl:tcp-ssl-server "127.0.0.1" 0
                           (lambda (s d) (as:write-socket-data s d))
                           :event-cb (lambda (e) (push e sevents))
                           :connect-cb (lambda (s)
                                         ;; read (and cache) it while connected
                                         (as-ssl:ssl-socket-peer-certificate s)
                                         (push s ssocks))
                           (append server-args (server-args)))))
        (setf client
              (apply #'as-ssl:tcp-ssl-connect host (as:tcp-server-port server)
                     (lambda (s d)
                       (setf reply (text d))
                       (as-ssl:ssl-socket-peer-certificate s)
                       (as:close-socket s)
                       (as:close-tcp-server server))
                     :event-cb (lambda (e)
                                 (push e cevents)
                                 (as:close-tcp-server server))
                     :data data
                     client-args))))
    (list :reply reply :client-events cevents :server-events sevents
          :client client :server-sockets ssocks)))

;;;# openssl s_server / s_client as peers

(defun tcp-port-open-p (port)
  (let ((s (make-instance 'sb-bsd-sockets:inet-socket :type :stream :protocol :tcp)))
    (unwind-protect
         (handler-case (progn (sb-bsd-sockets:socket-connect s #(127 0 0 1) port) t)
           (error () nil))
      (sb-bsd-sockets:socket-close s))))

(defun call-with-openssl-server (args fn)
  "Runs `openssl s_server' with ARGS on a free port until FN (called with
the port) returns."
  (let* ((port (free-port))
         (process (uiop:launch-program
                   (append (list "openssl" "s_server" "-accept"
                                 (format nil "127.0.0.1:~a" port))
                           args)
                   :input :stream :output nil :error-output nil)))
    (unwind-protect
         (progn
           (loop :repeat 100
                 :until (tcp-port-open-p port)
                 :do (sleep 0.05))
           (funcall fn port))
      (uiop:terminate-process process :urgent t)
      (uiop:wait-process process))))

(defmacro with-openssl-server ((port &rest args) &body body)
  "Runs BODY with PORT bound to the port of an `openssl s_server' started
with ARGS (strings)."
  `(call-with-openssl-server (list ,@args) (lambda (,port) ,@body)))

(defun run-openssl-client (port input args &key (quiet t))
  "Starts `openssl s_client' against 127.0.0.1:PORT with ARGS (and -quiet
unless QUIET is nil), writes INPUT to it; returns the process (output is
read with PROCESS-OUTPUT-TEXT)."
  (let ((p (uiop:launch-program
            (append (list "openssl" "s_client" "-connect"
                          (format nil "127.0.0.1:~a" port))
                    (and quiet (list "-quiet"))
                    args)
            :input :stream :output :stream :error-output :stream)))
    (write-string input (uiop:process-info-input p))
    (finish-output (uiop:process-info-input p))
    p))

(defun process-output-text (process)
  "Waits for PROCESS (at most 10 s) and returns (values stdout stderr)."
  (loop :repeat 200
        :while (uiop:process-alive-p process)
        :do (sleep 0.05))
  (when (uiop:process-alive-p process)
    (uiop:terminate-process process :urgent t))
  (uiop:wait-process process)
  (values (uiop:slurp-stream-string (uiop:process-info-output process))
          (uiop:slurp-stream-string (uiop:process-info-error-output process))))

(defun wait-for-process (process then)
  "Polls PROCESS from the event loop every 50 ms; calls THEN once it exited."
  (if (uiop:process-alive-p process)
      (as:delay (lambda () (wait-for-process process then)) :time 0.05)
      (funcall then)))
