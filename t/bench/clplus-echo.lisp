;;;; clplus-echo.lisp --- the cl+ssl TLS echo server `make bench` compares
;;;; with: Debian's cl-plus-ssl, blocking I/O, one thread per connection.
;;;;
;;;;   sbcl --script t/bench/clplus-echo.lisp CERT KEY [PORT]
;;;;
;;;; Listens on 127.0.0.1:PORT (default 0: any free port) with an
;;;; sb-bsd-sockets socket, prints "PORT <port> PID <pid>" once it listens,
;;;; and runs until it is killed.  Each accepted connection gets a thread
;;;; that makes a cl+ssl:make-ssl-server-stream over the socket (the
;;;; handshake) and echoes: a blocking READ-BYTE waits for the next record,
;;;; then the rest of that record (SSL_pending) is read and everything is
;;;; written back and flushed.  cl+ssl's stream buffers are raised from 2 KiB
;;;; to 16 KiB, a full TLS record, so that a 16 KiB chunk is one SSL_write
;;;; (one record), not eight.  Errors other than a client's abrupt close are
;;;; reported on stderr (first of each kind, then at every power of ten).
;;;;
;;;; make bench runs it with --dynamic-space-size 4GB (SBCL's default 1 GB
;;;; heap runs out before 10000 connections, each holding its buffers).

(require :asdf)
(require :sb-bsd-sockets)
(require :sb-posix)
(handler-bind ((warning #'muffle-warning))
  (asdf:load-system :cl+ssl))

(defpackage #:clplus-echo (:use #:cl))
(in-package #:clplus-echo)

(defvar *lock* (sb-thread:make-mutex :name "event counts"))
(defvar *event-counts* (make-hash-table :test 'equal))

(defun note-event (kind condition)
  (let ((n (sb-thread:with-mutex (*lock*)
             (incf (gethash kind *event-counts* 0)))))
    (when (or (= n 1) (= n (expt 10 (round (log n 10)))))
      (ignore-errors
       (format *error-output* "clplus-echo: event ~a x~d: ~a~%" kind n condition)
       (finish-output *error-output*)))))

(defun pending (stream)
  "Decrypted bytes OpenSSL holds for STREAM (the rest of the current record)."
  (cffi:foreign-funcall "SSL_pending" :pointer (cl+ssl::ssl-stream-handle stream)
                                      :int))

(defconstant +record+ 16384 "The largest TLS record payload.")

(defun echo (stream)
  (let ((buffer (make-array +record+ :element-type '(unsigned-byte 8))))
    (loop
      (let ((byte (read-byte stream nil nil)))
        (unless byte (return))
        (setf (aref buffer 0) byte)
        (let* ((more (min (pending stream) (1- (length buffer))))
               (end (read-sequence buffer stream :start 1 :end (1+ more))))
          (write-sequence buffer stream :end end)
          (force-output stream))))))

(defun serve (socket certificate key)
  (let ((stream nil))
    (handler-case
        (progn
          (setf stream (cl+ssl:make-ssl-server-stream
                        (sb-bsd-sockets:socket-file-descriptor socket)
                        :certificate certificate :key key
                        :buffer-size +record+))
          (echo stream))
      ((or end-of-file sb-int:broken-pipe sb-int:simple-stream-error) ())
      (cl+ssl::ssl-error-syscall ())
      (error (e) (note-event (string-downcase (type-of e)) e)))
    (when stream
      (ignore-errors (close stream :abort t)))
    (ignore-errors (sb-bsd-sockets:socket-close socket))))

(defun main (args)
  (destructuring-bind (certificate key &optional (port "0")) args
    (cl+ssl:ensure-initialized)
    (let ((listener (make-instance 'sb-bsd-sockets:inet-socket
                                   :type :stream :protocol :tcp)))
      (setf (sb-bsd-sockets:sockopt-reuse-address listener) t)
      (sb-bsd-sockets:socket-bind listener #(127 0 0 1) (parse-integer port))
      (sb-bsd-sockets:socket-listen listener 4096)
      (format t "PORT ~d PID ~d~%"
              (nth-value 1 (sb-bsd-sockets:socket-name listener))
              (sb-posix:getpid))
      (finish-output)
      (loop
        (let ((socket (handler-case (sb-bsd-sockets:socket-accept listener)
                        (error (e) (note-event "accept" e) (sleep 0.01) nil))))
          (when socket
            (setf (sb-bsd-sockets:sockopt-tcp-nodelay socket) t)
            (handler-case
                (sb-thread:make-thread (lambda () (serve socket certificate key))
                                       :name "clplus-echo connection")
              (error (e)
                (note-event "thread" e)
                (ignore-errors (sb-bsd-sockets:socket-close socket))))))))))

(main (rest sb-ext:*posix-argv*))
