;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; stress-server.lisp --- the TLS server the stress suite attacks.
;;;;
;;;; A default tcp-ssl-server echo, plus three commands a client may send
;;;; as the first bytes of a read:
;;;;   "BULK n\n"  the server sends n MiB (byte i = i mod 251), using the
;;;;               documented backpressure pattern: it writes while
;;;;               socket-write-queue-size is under 1 MiB, then waits for
;;;;               the write-cb;
;;;;   "STATS\n"   one line: a plist with as:stats, live TLS filters and
;;;;               the events the server's event-cb saw, by type;
;;;;   "CLOSE\n"   the server closes the connection;
;;;;   "MEMORY\n"  after a full GC: one line, a plist with the Lisp heap in
;;;;               use, the bytes malloc has handed out (glibc mallinfo2),
;;;;               and VmRSS, all in KiB;
;;;;   "WHO\n"     (the whole read) one line: this process's pid (which
;;;;               worker of several sharing a port the connection reached;
;;;;               an echo payload may begin with "WHO").
;;;; Environment: CASL_STRESS_CERTS (certificate directory),
;;;; CASL_STRESS_PORT_FILE (where the port is written),
;;;; CASL_STRESS_REUSE_PORT (if set: listen with :reuse-port t on that port,
;;;; 0 for any free one, beside other workers on it),
;;;; CASL_STRESS_HANDSHAKE_TIMEOUT (seconds, default 2),
;;;; CASL_STRESS_CERT_NAME ("server", ECDSA, or "server-rsa"; see
;;;; t/make-certs.sh).  Otherwise every setting is tcp-ssl-server's default.

(require :asdf)
(require :sb-posix)
(push (uiop:getcwd) asdf:*central-registry*)
(asdf:load-system :cl-async-ssl)

(defpackage #:cl-async-ssl-stress-server (:use #:cl))
(in-package #:cl-async-ssl-stress-server)
(load (merge-pathnames "common.lisp" *load-truename*))

(defparameter *certs* (uiop:getenv "CASL_STRESS_CERTS"))
(defparameter *cert-name* (or (uiop:getenv "CASL_STRESS_CERT_NAME") "server"))
(defparameter *high-water* (* 1024 1024))
(defparameter *chunk*
  (let ((v (make-array 65536 :element-type '(unsigned-byte 8))))
    (dotimes (i 65536 v) (setf (aref v i) (mod i 251)))))
(defparameter *events* (make-hash-table :test 'equal))

(defun send-bulk (socket state)
  "Writes the rest of a BULK transfer, STATE being (remaining . offset):
while the write queue is under *high-water*, then again from the write-cb
once it has drained (the write-cb stays on the socket: it checks STATE)."
  (loop :while (and (plusp (car state))
                    (not (as:socket-closed-p socket))
                    (< (as:socket-write-queue-size socket) *high-water*))
        :do (let* ((start (mod (cdr state) 251))
                   (n (min (car state) (- 65536 start))))
              (as:write-socket-data socket *chunk* :start start :end (+ start n))
              (decf (car state) n)
              (incf (cdr state) n))))

(defun command-p (data prefix)
  (and (>= (length data) (length prefix))
       (every (lambda (b c) (= b (char-code c))) data prefix)))

(defun read-cb (socket data)
  (cond ((command-p data "BULK ")
         (let ((mib (parse-integer (babel:octets-to-string data :start 5)
                                   :junk-allowed t)))
           (let ((state (cons (* (or mib 1) 1024 1024) 0)))
             (as:write-socket-data socket (make-array 0 :element-type '(unsigned-byte 8))
                                   :write-cb (lambda (s) (send-bulk s state)))
             (send-bulk socket state))))
        ((command-p data "STATS")
         (let ((events '()))
           (maphash (lambda (k v) (push (cons k v) events)) *events*)
           (as:write-socket-data
            socket (format nil "~s~%"
                           (list :stats (as:stats)
                                 :tls-live (cl-async-ffi:tls-live-count)
                                 :events events)))))
        ((command-p data "CLOSE")
         (as:close-socket socket))
        ((command-p data "MEMORY")
         (sb-ext:gc :full t)
         (as:write-socket-data
          socket (format nil "~s~%"
                         (list :lisp-heap-kib (floor (sb-kernel:dynamic-usage) 1024)
                               :malloc-kib (floor (malloc-in-use) 1024)
                               :rss-kib (rss-kib)))))
        ((and (= (length data) 4) (command-p data (format nil "WHO~%")))
         (as:write-socket-data socket (format nil "~d~%" (sb-posix:getpid))))
        (t (as:write-socket-data socket data))))

(defun parse-number (s)
  (let ((*read-eval* nil)) (read-from-string s)))

(defun event-cb (ev)
  (incf (gethash (string (type-of ev)) *events* 0)))

(exit-when-orphaned)
(as:with-event-loop ()
  (let* ((reuse (uiop:getenv "CASL_STRESS_REUSE_PORT"))
         (server (as-ssl:tcp-ssl-server
                  "127.0.0.1" (if reuse (parse-integer reuse) 0) #'read-cb
                  :reuse-port (and reuse t)
                  :event-cb #'event-cb
                  :certificate (format nil "~a/~a-chain.pem" *certs* *cert-name*)
                  :key (format nil "~a/~a.key" *certs* *cert-name*)
                  :handshake-timeout (let ((s (uiop:getenv "CASL_STRESS_HANDSHAKE_TIMEOUT")))
                                       (if s (parse-number s) 2))
                  :backlog 4096)))
    (with-open-file (f (uiop:getenv "CASL_STRESS_PORT_FILE") :direction :output
                                                             :if-exists :supersede)
      (format f "~a~%" (as:tcp-server-port server)))))
