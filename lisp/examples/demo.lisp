;;;; demo.lisp --- `make demo`: an echo server and a client on loopback.
;;;;
;;;; Run from the repository root:
;;;;   sbcl --non-interactive --load lisp/examples/demo.lisp

(require :asdf)
(push (uiop:getcwd) asdf:*central-registry*)
(asdf:load-system :cl-async-ssl)

(defpackage #:cl-async-ssl-demo (:use #:cl))
(in-package #:cl-async-ssl-demo)

(defparameter *messages* '("hello" "from" "cl-async-ssl"))

(defun now-us ()
  (multiple-value-bind (s us) (sb-ext:get-time-of-day)
    (+ (* s 1000000) us)))

(defun demo ()
  (format t "~&cl-async-ssl ~a on libuv ~a, ~a~%"
          (asdf:component-version (asdf:find-system :cl-async-ssl))
          (cl-async-ffi:libuv-version) (cl-async-ffi:openssl-version))
  (as:with-event-loop ()
    (let* ((server (as:tcp-server "127.0.0.1" 0
                                  (lambda (socket data)
                                    (format t "server got  ~s~%"
                                            (babel:octets-to-string data))
                                    (as:write-socket-data socket data))
                                  :event-cb (lambda (ev)
                                              (format t "server event: ~a~%" ev))))
           (port (as:tcp-server-port server))
           (left *messages*)
           (start 0))
      (format t "echo server listening on 127.0.0.1:~a~%" port)
      (labels ((send-next (socket)
                 (setf start (now-us))
                 (as:write-socket-data socket (pop left))))
        (as:tcp-connect "127.0.0.1" port
                        (lambda (socket data)
                          (format t "client got  ~s (round trip ~d µs)~%"
                                  (babel:octets-to-string data)
                                  (- (now-us) start))
                          (if left
                              (send-next socket)
                              (progn (as:close-socket socket)
                                     (as:close-tcp-server server))))
                        :connect-cb #'send-next
                        :event-cb (lambda (ev) (format t "client event: ~a~%" ev))))))
  (format t "done~%"))

(demo)
