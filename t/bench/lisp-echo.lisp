;;;; lisp-echo.lisp --- the TLS echo server that `make bench` measures:
;;;; as-ssl:tcp-ssl-server with a read-cb that writes every read back.
;;;;
;;;;   sbcl --script t/bench/lisp-echo.lisp CERT KEY [PORT]
;;;;
;;;; Listens on 127.0.0.1:PORT (default 0: any free port), prints
;;;; "PORT <port> PID <pid>" on stdout once it listens, and runs until it is
;;;; killed.  Events other than the normal end of a connection are counted
;;;; and reported on stderr (the first of each kind, then at every power of
;;;; ten), so a bench run can show errors the load generator did not see.

(require :asdf)
(require :sb-posix)
(let ((root (merge-pathnames "../../" (make-pathname :name nil :type nil
                                                     :defaults *load-truename*))))
  (push (truename root) asdf:*central-registry*))
(handler-bind ((warning #'muffle-warning))
  (asdf:load-system :cl-async-ssl))

(defpackage #:cl-async-ssl-bench-echo (:use #:cl))
(in-package #:cl-async-ssl-bench-echo)

(defvar *event-counts* (make-hash-table :test 'eq))

(defun note-event (ev)
  "Counts EV by its type; reports the first, the 10th, the 100th... on stderr."
  (let* ((kind (type-of ev))
         (n (incf (gethash kind *event-counts* 0))))
    (when (or (= n 1) (= n (expt 10 (round (log n 10)))))
      (format *error-output* "lisp-echo: event ~(~a~) x~d: ~a~%" kind n ev)
      (finish-output *error-output*))))

(defun normal-end-p (ev)
  "The ways a connection ends when a client closes it."
  (typep ev '(or as:socket-eof as:socket-reset as-ssl:tcp-ssl-truncated)))

(defun main (args)
  (destructuring-bind (certificate key &optional (port "0")) args
    (as:with-event-loop (:catch-app-errors t)
      (let ((server (as-ssl:tcp-ssl-server
                     "127.0.0.1" (parse-integer port)
                     (lambda (socket data)
                       (as:write-socket-data socket data))
                     :certificate certificate :key key
                     :backlog 4096
                     :event-cb (lambda (ev)
                                 (unless (normal-end-p ev)
                                   (note-event ev))))))
        (format t "PORT ~d PID ~d~%" (as:tcp-server-port server)
                (sb-posix:getpid))
        (finish-output)))))

(main (rest sb-ext:*posix-argv*))
