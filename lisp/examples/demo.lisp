;;;; demo.lisp --- `make demo`: a TLS echo server and a verifying client.
;;;;
;;;; Makes a throwaway CA and a server certificate for localhost in a
;;;; temporary directory (with the openssl command), starts tcp-ssl-server
;;;; on a free loopback port, connects with tcp-ssl-connect trusting only
;;;; that CA, echoes a few messages and prints what was negotiated.
;;;;
;;;; Run from the repository root:
;;;;   sbcl --non-interactive --load lisp/examples/demo.lisp

(require :asdf)
(push (uiop:getcwd) asdf:*central-registry*)
(asdf:load-system :cl-async-ssl)

(defpackage #:cl-async-ssl-demo (:use #:cl))
(in-package #:cl-async-ssl-demo)

(defparameter *messages* '("hello" "from" "cl-async-ssl"))

(defun openssl (&rest args)
  (uiop:run-program (cons "openssl" args) :output nil :error-output :output))

(defun make-certificates (dir)
  "A CA and a localhost certificate it signed, in DIR."
  (flet ((f (name) (namestring (merge-pathnames name dir))))
    (openssl "req" "-x509" "-newkey" "ec" "-pkeyopt" "ec_paramgen_curve:P-256"
             "-nodes" "-keyout" (f "ca.key") "-out" (f "ca.pem") "-days" "1"
             "-subj" "/CN=cl-async-ssl demo CA"
             "-addext" "basicConstraints=critical,CA:TRUE"
             "-addext" "keyUsage=critical,keyCertSign")
    (openssl "req" "-newkey" "ec" "-pkeyopt" "ec_paramgen_curve:P-256" "-nodes"
             "-keyout" (f "server.key") "-out" (f "server.csr")
             "-subj" "/O=cl-async-ssl demo/CN=localhost")
    (with-open-file (s (f "ext.cnf") :direction :output :if-exists :supersede)
      (format s "subjectAltName=DNS:localhost,IP:127.0.0.1~%"))
    (openssl "x509" "-req" "-in" (f "server.csr") "-CA" (f "ca.pem")
             "-CAkey" (f "ca.key") "-CAcreateserial" "-days" "1"
             "-extfile" (f "ext.cnf") "-out" (f "server.pem"))
    (values (f "server.pem") (f "server.key") (f "ca.pem"))))

(defun now-us ()
  (multiple-value-bind (s us) (sb-ext:get-time-of-day)
    (+ (* s 1000000) us)))

(defun demo (dir)
  (format t "~&cl-async-ssl ~a on libuv ~a, ~a~%"
          (asdf:component-version (asdf:find-system :cl-async-ssl))
          (cl-async-ffi:libuv-version) (cl-async-ffi:openssl-version))
  (multiple-value-bind (cert key ca) (make-certificates dir)
    (format t "made a throwaway CA and a certificate for localhost in ~a~%" dir)
    (as:with-event-loop ()
      (let* ((server (as-ssl:tcp-ssl-server
                      "127.0.0.1" 0
                      (lambda (socket data)
                        (format t "server got  ~s~%" (babel:octets-to-string data))
                        (as:write-socket-data socket data))
                      :certificate cert :key key :alpn '("http/1.1")
                      :event-cb (lambda (ev) (format t "server event: ~a~%" ev))))
             (port (as:tcp-server-port server))
             (left *messages*)
             (start 0))
        (format t "TLS echo server listening on 127.0.0.1:~a~%" port)
        (labels ((send-next (socket)
                   (setf start (now-us))
                   (as:write-socket-data socket (pop left))))
          (as-ssl:tcp-ssl-connect
           "localhost" port
           (lambda (socket data)
             (format t "client got  ~s (round trip ~d µs)~%"
                     (babel:octets-to-string data) (- (now-us) start))
             (if left
                 (send-next socket)
                 (progn (as:close-socket socket)
                        (as:close-tcp-server server))))
           :ca-file ca :alpn '("h2" "http/1.1")
           :connect-cb (lambda (socket)
                         (let ((peer (as-ssl:ssl-socket-peer-certificate socket)))
                           (format t "handshake done: ~a, ~a, ALPN ~a~%"
                                   (as-ssl:ssl-socket-protocol socket)
                                   (as-ssl:ssl-socket-cipher socket)
                                   (or (as-ssl:ssl-socket-alpn socket) "none"))
                           (format t "server certificate: ~a (issued by ~a)~%"
                                   (getf peer :subject) (getf peer :issuer)))
                         (send-next socket))
           :event-cb (lambda (ev) (format t "client event: ~a~%" ev)))))))
  (format t "done~%"))

(let ((dir (uiop:ensure-directory-pathname
            (uiop:run-program '("mktemp" "-d" "/tmp/cl-async-ssl-demo-XXXXXX")
                              :output '(:string :stripped t)))))
  (unwind-protect (demo dir)
    (uiop:delete-directory-tree dir :validate t)))
