;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; poll.lisp --- pollers on the application's own descriptors, and
;;;; idlers.

(in-package #:cl-async-ssl-test)

(def-suite pollers :in cl-async-core
  :description "poll, free-poller, idle, free-idler.")
(in-suite pollers)

(defun c-pipe ()
  "A pipe(2): (values read-fd write-fd)."
  (cffi:with-foreign-object (fds :int 2)
    (assert (zerop (cffi:foreign-funcall "pipe" :pointer fds :int)))
    (values (cffi:mem-aref fds :int 0) (cffi:mem-aref fds :int 1))))

(defun c-close (fd)
  (cffi:foreign-funcall "close" :int fd :int))

(defun c-write (fd string)
  (let ((octets (octets string)))
    (cffi:with-pointer-to-vector-data (p octets)
      (cffi:foreign-funcall "write" :int fd :pointer p :size (length octets)
                                    :long))))

(defun loopback-client (port)
  "A blocking sb-bsd-sockets client connected to 127.0.0.1:PORT."
  (let ((s (make-instance 'sb-bsd-sockets:inet-socket :type :stream
                                                      :protocol :tcp)))
    (sb-bsd-sockets:socket-connect s #(127 0 0 1) port)
    s))

(test poll-fd
  "A client socket's descriptor polled for :readable: the callback sees
the server's answer (upstream's poll-fd, on loopback with a free port)."
  (let ((response nil) (client nil))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0
                                    (lambda (sock data)
                                      (as:write-socket-data
                                       sock (concatenate 'string (text data) " lol")))
                                    :event-cb (lambda (ev) (declare (ignore ev)))))
             (port (as:tcp-server-port server)))
        (as:with-delay (0.05)
          (setf client (loopback-client port))
          (let* ((fd (sb-bsd-sockets:socket-file-descriptor client))
                 (poller nil))
            (setf poller
                  (as:poll fd
                           (lambda (events)
                             (is (equal '(:readable) events))
                             (multiple-value-bind (buf n)
                                 (sb-bsd-sockets:socket-receive
                                  client (make-array 16 :element-type '(unsigned-byte 8))
                                  nil)
                               (setf response (text (subseq buf 0 n))))
                             (as:free-poller poller)
                             (as:close-tcp-server server)
                             ;; the server's connection ends with it
                             (as:with-delay ()
                               (sb-bsd-sockets:socket-close client)
                               (setf client nil)))
                           :poll-for '(:readable) :socket t))
            (is (typep poller 'as:poller))
            (sb-bsd-sockets:socket-send client (octets "omg") nil)))))
    (when client (sb-bsd-sockets:socket-close client))
    (is (equal "omg lol" response))))

(test poll-events-in-upstreams-order
  "Readable and writable at once: (:writable :readable), as upstream
reports them."
  (let ((events nil))
    ;; A socket pair's end with data waiting is both.
    (multiple-value-bind (a b) (socket-pair)
      (unwind-protect
           (with-test-loop ()
             (let ((poller nil))
               (c-write b "x")
               (setf poller (as:poll a (lambda (ev)
                                         (setf events ev)
                                         (as:free-poller poller))))))
        (c-close a) (c-close b)))
    (is (equal '(:writable :readable) events))))

(defun socket-pair ()
  "socketpair(2), AF_UNIX stream: (values fd fd)."
  (cffi:with-foreign-object (fds :int 2)
    (assert (zerop (cffi:foreign-funcall "socketpair" :int 1 :int 1 :int 0
                                         :pointer fds :int)))
    (values (cffi:mem-aref fds :int 0) (cffi:mem-aref fds :int 1))))

(test poll-for-is-checked-before-anything-is-made
  (let ((handles-before nil) (handles-after nil))
    (multiple-value-bind (a b) (socket-pair)
      (unwind-protect
           (with-test-loop ()
             (setf handles-before (getf (as:stats) :open-handles))
             (signals error (as:poll a #'identity :poll-for '(:readable :oops)))
             (signals error (as:poll a #'identity :poll-for '()))
             (signals error (as:poll a #'identity :poll-for :readable))
             (signals error (as:poll -1 #'identity))
             (signals error (as:poll "3" #'identity))
             (setf handles-after (getf (as:stats) :open-handles)))
        (c-close a) (c-close b)))
    (is (eql handles-before handles-after))))

(test poll-refused-descriptors
  "A regular file (EPERM), a closed descriptor (EBADF), a descriptor
polled twice (EEXIST): each a clear condition, signalled at once."
  (let ((eperm nil) (ebadf nil) (eexist nil))
    (uiop:with-temporary-file (:stream s :pathname p :direction :output)
      (declare (ignore p))
      (let ((file-fd (sb-sys:fd-stream-fd s)))
        (multiple-value-bind (a b) (socket-pair)
          (unwind-protect
               (with-test-loop ()
                 (setf eperm (handler-case (as:poll file-fd #'identity)
                               (error (e) e)))
                 ;; a descriptor just closed (nothing opened since)
                 (multiple-value-bind (r w) (c-pipe)
                   (c-close r) (c-close w)
                   (setf ebadf (handler-case (as:poll w #'identity)
                                 (error (e) e))))
                   (let ((p (as:poll a #'identity :poll-for '(:readable))))
                     (setf eexist (handler-case (as:poll a #'identity)
                                    (error (e) e)))
                   (as:free-poller p)))
            (c-close a) (c-close b)))))
    (is (typep eperm 'as:filesystem-eperm))
    (is (search "regular file" (princ-to-string eperm)))
    (is (typep ebadf 'as:event-error))
    (is (search "not an open file descriptor" (princ-to-string ebadf)))
    (is (typep eexist 'as:event-error))
    (is (search "already watched" (princ-to-string eexist)))))

(test free-poller-is-idempotent-and-ends-the-loop
  (let ((poller nil) (calls 0))
    (multiple-value-bind (a b) (socket-pair)
      (unwind-protect
           (with-test-loop ()
             (setf poller (as:poll a (lambda (events)
                                       (declare (ignore events))
                                       (incf calls)
                                       (as:free-poller poller)
                                       (as:free-poller poller))
                                   :poll-for '(:writable))))
        (c-close a) (c-close b)))
    (is (= 1 calls))
    (is-true (as:poller-freed-p poller))))

(test poll-error-goes-to-event-cb
  "The write end of a pipe whose reader is gone: an error event (POLLERR,
EBADF) reaches the event-cb as an EVENT-ERROR."
  (let ((seen nil) (calls 0))
    (multiple-value-bind (r w) (c-pipe)
      (c-close r)
      (unwind-protect
           (with-test-loop ()
             (let ((poller nil))
               (setf poller (as:poll w (lambda (events) (declare (ignore events))
                                         (incf calls))
                                     :poll-for '(:writable)
                                     :event-cb (lambda (e)
                                                 (setf seen e)
                                                 (as:free-poller poller))))))
        (c-close w)))
    (is (= 0 calls))
    (is (typep seen 'as:event-error))
    (is (search "descriptor" (princ-to-string seen)))))

(test poll-app-errors-go-to-event-cb-once
  (let ((seen '()))
    (multiple-value-bind (a b) (socket-pair)
      (unwind-protect
           (with-test-loop (:catch-app-errors t)
             (let ((poller nil))
               (setf poller (as:poll a (lambda (events) (declare (ignore events))
                                         (as:free-poller poller)
                                         (error "in the poll-cb"))
                                     :poll-for '(:writable)
                                     :event-cb (lambda (e) (push e seen))))))
        (c-close a) (c-close b)))
    (is (= 1 (length seen)))
    (is (equal "in the poll-cb" (princ-to-string (first seen))))))

(test teardown-with-an-active-poller-does-not-hang
  (let ((poller nil) (calls 0))
    (multiple-value-bind (a b) (socket-pair)
      (unwind-protect
           (with-test-loop (:timeout 5)
             (setf poller (as:poll a (lambda (events) (declare (ignore events))
                                       (when (= (incf calls) 3)
                                         (as:exit-event-loop)))
                                   :poll-for '(:writable))))
        (c-close a) (c-close b)))
    (is (= 3 calls))
    (is-true (as:poller-freed-p poller))))

;;;# Idlers

(test idle
  "The callback frees its idler at 517: the count ends at exactly 517 and
the loop ends by itself."
  (let ((count 0) (idler nil))
    (with-test-loop (:timeout 5)
      (setf idler (as:idle (lambda ()
                             (incf count)
                             (when (<= 517 count)
                               (as:free-idler idler))))))
    (is (= 517 count))
    (is-true (as:idler-freed-p idler))))

(test idle-runs-with-other-events-and-errors-go-to-event-cb
  (let ((runs 0) (timer nil) (seen nil))
    (with-test-loop (:catch-app-errors t)
      (let ((idler nil))
        (setf idler (as:idle (lambda ()
                               (incf runs)
                               (when timer
                                 (as:free-idler idler)
                                 (as:free-idler idler)
                                 (error "in the idler")))
                             :event-cb (lambda (e) (setf seen e))))
        (as:delay (lambda () (setf timer t)) :time 0.05)))
    (is (> runs 2))
    (is (typep seen 'simple-error))))

(test idler-freed-at-exit
  (let ((idler nil))
    (with-test-loop ()
      (setf idler (as:idle (lambda ())))
      (as:delay #'as:exit-event-loop :time 0.02))
    (as:free-idler idler)                 ; after the loop: harmless
    (is-true (as:idler-freed-p idler))))
