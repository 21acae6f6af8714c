;;;; lisp-echo.lisp --- a Lisp-driven TLS and TCP workout for the ASan +
;;;; UBSan build of the C library (make asan): echoes, closes from inside
;;;; callbacks, forced closes, handshake failures, STARTTLS, an escaping
;;;; error, and teardown with live handles.  Prints "lisp-asan: ok" at the
;;;; end; the sanitizers abort the process on any report.

(require :asdf)
(push (uiop:getcwd) asdf:*central-registry*)
(asdf:load-system :cl-async-ssl)

(defpackage #:cl-async-ssl-asan (:use #:cl))
(in-package #:cl-async-ssl-asan)

(defparameter *certs* (uiop:getenv "CASL_CERTS"))
(defun cert (name) (format nil "~a/~a" *certs* name))

(format t "library: ~a~%" (uiop:getenv "CL_ASYNC_SSL_LIBRARY"))

(defun check (ok what)
  (unless ok
    (format t "lisp-asan: FAILED: ~a~%" what)
    (uiop:quit 1)))

;; TLS echoes, half closed gracefully, half forced, some from callbacks
(let ((ok 0) (n 300))
  (as:with-event-loop ()
    (let ((server (as-ssl:tcp-ssl-server "127.0.0.1" 0 (lambda (s d) (as:write-socket-data s d))
                                         :certificate (cert "server-chain.pem")
                                         :key (cert "server.key")))
          (left n))
      (dotimes (i n)
        (let ((i i))
          (as-ssl:tcp-ssl-connect
           "127.0.0.1" (as:tcp-server-port server)
           (lambda (s d)
             (when (= (length d) 5000) (incf ok))
             (as:close-socket s :force (oddp i))
             (when (zerop (decf left)) (as:close-tcp-server server)))
           :ca-file (cert "ca.pem")
           :connect-cb (lambda (s) (when (zerop (mod i 7)) (as:write-socket-data s "")))
           :data (make-string 5000 :initial-element #\z))))))
  (check (= ok n) (format nil "~d/~d TLS echoes" ok n)))

;; handshake failures, a plaintext client, 1 MiB, STARTTLS
(let ((events '()) (big 0) (starttls nil))
  (as:with-event-loop ()
    (let ((server (as-ssl:tcp-ssl-server "127.0.0.1" 0 (lambda (s d) (as:write-socket-data s d))
                                         :certificate (cert "selfsigned.pem")
                                         :key (cert "selfsigned.key")
                                         :event-cb (lambda (e) (push e events)))))
      (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server) nil
                              :event-cb (lambda (e) (push e events)) :data "x")
      (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                      :data "GET / HTTP/1.0" :event-cb (lambda (e) (push e events)))
      (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                              (lambda (s d)
                                (when (>= (incf big (length d)) (* 1024 1024))
                                  (as:close-socket s)))
                              :verify nil :data (make-array (* 1024 1024) :element-type '(unsigned-byte 8)
                                                                          :initial-element 7))
      (as:with-delay (2) (as:close-tcp-server server))))
  (check (= big (* 1024 1024)) "1 MiB echo")
  (check (some (lambda (e) (typep e 'as-ssl:tcp-ssl-verify-error)) events) "verify error")
  (as:with-event-loop ()
    (let ((server (as:tcp-server "127.0.0.1" 0
                                 (lambda (s d)
                                   (if (typep s 'as-ssl:ssl-socket)
                                       (as:write-socket-data s d)
                                       (progn (as:write-socket-data s "go")
                                              (as-ssl:start-tls s :server t
                                                                  :certificate (cert "server-chain.pem")
                                                                  :key (cert "server.key"))))))))
      (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                      (lambda (s d)
                        (if (typep s 'as-ssl:ssl-socket)
                            (progn (setf starttls (babel:octets-to-string d))
                                   (as:close-socket s) (as:close-tcp-server server))
                            (as-ssl:start-tls s :ca-file (cert "ca.pem") :hostname "localhost"
                                                :connect-cb (lambda (s) (as:write-socket-data s "tls")))))
                      :data "STARTTLS")))
  (check (equal starttls "tls") "STARTTLS"))

;; an error escaping a callback, and teardown with handles still open
(handler-case
    (as:with-event-loop ()
      (let ((server (as-ssl:tcp-ssl-server "127.0.0.1" 0 nil :certificate (cert "server-chain.pem")
                                                             :key (cert "server.key"))))
        (dotimes (i 20)
          (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server) nil
                                  :ca-file (cert "ca.pem") :data "x"))
        (as:with-delay (0.01) (error "escape"))))
  (simple-error () nil))

(check (zerop (cl-async-ffi:tls-live-count)) "TLS filters left")
(format t "lisp-asan: ok~%")
(finish-output)
(uiop:quit 0)
