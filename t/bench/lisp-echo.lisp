;;;; lisp-echo.lisp --- the TLS echo server that `make bench` measures:
;;;; as-ssl:tcp-ssl-server with a read-cb that writes every read back.
;;;;
;;;;   sbcl --script t/bench/lisp-echo.lisp CERT KEY [PORT [OPTION...]]
;;;;
;;;; Options: --read-buffer reuse (the server's :read-buffer :reuse: the
;;;; read-cb gets a reused vector, which it writes back at once);
;;;; --loops N (N event loops in N threads, each with its own
;;;; tcp-ssl-server on the port, :reuse-port t, sharing :ticket-keys).
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

(defun option (args name default)
  (let ((cell (member name args :test #'string=)))
    (if cell (second cell) default)))

(defun serve (certificate key port read-buffer ticket-keys on-listen)
  "Runs one event loop with an echo server on PORT; calls ON-LISTEN with
the server once it listens."
  (as:with-event-loop (:catch-app-errors t)
    (let ((server (apply #'as-ssl:tcp-ssl-server
                         "127.0.0.1" port
                         (lambda (socket data)
                           (as:write-socket-data socket data))
                         :certificate certificate :key key
                         :backlog 4096
                         :read-buffer read-buffer
                         :event-cb (lambda (ev)
                                     (unless (normal-end-p ev)
                                       (note-event ev)))
                         (and ticket-keys
                              (list :reuse-port t :ticket-keys ticket-keys)))))
      (funcall on-listen server))))

(defun announce (port)
  (format t "PORT ~d PID ~d~%" port (sb-posix:getpid))
  (finish-output))

(defun main (args)
  (destructuring-bind (certificate key &optional (port "0") &rest options) args
    (let ((read-buffer (if (equal (option options "--read-buffer" "fresh") "reuse")
                           :reuse
                           :fresh))
          (loops (parse-integer (option options "--loops" "1")))
          (port (parse-integer port)))
      (if (= loops 1)
          (serve certificate key port read-buffer nil
                 (lambda (server) (announce (as:tcp-server-port server))))
          ;; The first loop picks the port; the others join it.
          (let* ((keys (let ((k (make-array 80 :element-type '(unsigned-byte 8))))
                         (dotimes (i 80 k) (setf (aref k i) (random 256)))))
                 (lock (bt:make-lock))
                 (ready (bt:make-condition-variable))
                 (chosen nil))
            (flet ((worker (wanted)
                     (lambda ()
                       (serve certificate key wanted read-buffer keys
                              (lambda (server)
                                (bt:with-lock-held (lock)
                                  (setf chosen (as:tcp-server-port server))
                                  (bt:condition-notify ready)))))))
              (let ((first (bt:make-thread (worker port) :name "echo loop 1")))
                (bt:with-lock-held (lock)
                  (loop :until chosen :do (bt:condition-wait ready lock)))
                (loop :for i :from 2 :to loops
                      :do (bt:make-thread (worker chosen)
                                          :name (format nil "echo loop ~d" i)))
                (announce chosen)
                (bt:join-thread first))))))))

(main (rest sb-ext:*posix-argv*))
