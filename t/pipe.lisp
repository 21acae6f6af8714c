;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; pipe.lisp --- pipes (unix domain sockets), in temporary directories.

(in-package #:cl-async-ssl-test)

(def-suite pipes :in cl-async-core :description "Pipes: unix domain sockets.")
(in-suite pipes)

(defun touch (path)
  (with-open-file (s path :direction :output :if-exists :supersede)
    (write-string "not a socket" s))
  path)

(test pipe-simple-client-server
  "Upstream's test over a pipe: two clients send :data \"ha\" plus a write
of \"i \"; the server reads \"hai \" twice and answers \"thxlol \"."
  (with-temp-dir (dir)
    (let ((path (concatenate 'string dir "blabla"))
          (server-reads '()) (connects 0) (replies '()))
      (with-test-loop ()
        (let ((server (as:pipe-server path
                                      (lambda (s d)
                                        (push (text d) server-reads)
                                        (as:write-socket-data s "thxlol "))
                                      :connect-cb (lambda (s)
                                                    (is (typep s 'as:pipe))
                                                    (incf connects))))
              (done 0))
          (is (typep server 'as:pipe-server))
          (dotimes (i 2)
            (let ((sock (as:pipe-connect path
                                         (lambda (s d)
                                           (push (text d) replies)
                                           (as:close-socket s)
                                           (when (= 2 (incf done))
                                             (as:close-socket-server server)))
                                         :event-cb (lambda (e) (error e))
                                         :data "ha")))
              (is (typep sock 'as:pipe))
              (as:write-socket-data sock "i ")))))
      (is (equal '("hai " "hai ") server-reads))
      (is (= 2 connects))
      (is (equal '("thxlol " "thxlol ") replies))
      (is (null (probe-file path)) "the server removed its socket file"))))

(test pipe-connect-fail
  "Nothing at the path: a PIPE-NOT-FOUND (a STREAMISH-ENOENT) reaches the
event-cb once, on a later pass, with the pipe already closed."
  (with-temp-dir (dir)
    (let ((events '()) (returned nil) (closed-in-cb nil) (sock nil))
      (with-test-loop ()
        (setf sock (as:pipe-connect (concatenate 'string dir "nosuchpipe")
                                    (lambda (s d) (declare (ignore s d)))
                                    :event-cb (lambda (e)
                                                (is-true returned)
                                                (setf closed-in-cb (as:socket-closed-p sock))
                                                (push e events))
                                    :data "hai" :read-timeout 1)
              returned t))
      (is (= 1 (length events)))
      (is (typep (first events) 'as:pipe-not-found))
      (is (typep (first events) 'as:streamish-enoent))
      (is (eq sock (as:socket (first events))))
      (is-true closed-in-cb)
      (is (search "nosuchpipe" (princ-to-string (first events)))))))

(test pipe-connect-refused
  "A file that is no listening socket: SOCKET-REFUSED."
  (with-temp-dir (dir)
    (let ((events '()))
      (with-test-loop ()
        (as:pipe-connect (touch (concatenate 'string dir "plain")) nil
                         :event-cb (lambda (e) (push e events))))
      (is (= 1 (length events)))
      (is (typep (first events) 'as:socket-refused)))))

(test pipe-server-close
  "Upstream's test: a server closed after 0.1 s reports closed, a client
connected earlier closes a second later, and the loop ends by itself."
  (with-temp-dir (dir)
    (let ((path (concatenate 'string dir "blabla")) (closedp nil))
      (with-test-loop (:timeout 5)
        (let ((server (as:pipe-server path (lambda (s d) (declare (ignore s d)))
                                      :event-cb (lambda (e) (declare (ignore e))))))
          (as:pipe-connect path (lambda (s d) (declare (ignore s d)))
                           :event-cb (lambda (e) (declare (ignore e)))
                           :connect-cb (lambda (sock)
                                         (as:with-delay (1)
                                           (let ((pre (as::socket-server-closed server)))
                                             (as:close-socket sock)
                                             (as:with-delay ()
                                               (setf closedp
                                                     (and pre (as::socket-server-closed server))))))))
          (as:with-delay (0.1) (as:close-tcp-server server))))
      (is-true closedp))))

(test pipe-server-stream
  "Upstream's test: a :stream t pipe server drains its stream with
read-sequence and gets the client's :data."
  (with-temp-dir (dir)
    (let ((path (concatenate 'string dir "blabla")) (got nil))
      (with-test-loop ()
        (let ((server nil))
          (setf server
                (as:pipe-server path
                                (lambda (sock stream)
                                  (is (typep stream 'as:async-io-stream))
                                  (is (typep sock 'as:pipe))
                                  (let ((buf (make-array 1024 :element-type '(unsigned-byte 8))))
                                    (loop :for n := (read-sequence buf stream)
                                          :while (plusp n)
                                          :do (setf got (concatenate 'string got
                                                                     (text (subseq buf 0 n))))))
                                  (as:close-socket sock)
                                  (as:close-socket-server server))
                                :stream t))
          (as:pipe-connect path nil :data "HELLO!")))
      (is (equal "HELLO!" got)))))

(test pipe-exchange-1mib
  "A pipe client sends 1 MiB, the server echoes it: both sides get every
byte, in order."
  (with-temp-dir (dir)
    (let* ((path (concatenate 'string dir "big"))
           (data (random-octets (* 1024 1024) 7))
           (server-got '()) (client-got '()) (n 0))
      (with-test-loop ()
        (let ((server (as:pipe-server path
                                      (lambda (s d)
                                        (push d server-got)
                                        (as:write-socket-data s d)))))
          (as:pipe-connect path
                           (lambda (s d)
                             (push d client-got)
                             (when (>= (incf n (length d)) (length data))
                               (as:close-socket s)
                               (as:close-socket-server server)))
                           :data data)))
      (is (equalp data (concat-octets (reverse server-got))))
      (is (equalp data (concat-octets (reverse client-got)))))))

(test pipe-reused-read-buffer
  "Pipes take :read-buffer :reuse too (server and client): 1 MiB echoed
arrives intact through reused vectors."
  (with-temp-dir (dir)
    (let* ((path (concatenate 'string dir "reuse"))
           (data (random-octets (* 1024 1024) 9))
           (client-got '()) (vectors '()) (n 0))
      (with-test-loop ()
        (let ((server (as:pipe-server path
                                      (lambda (s d) (as:write-socket-data s d))
                                      :read-buffer :reuse)))
          (as:pipe-connect path
                           (lambda (s d)
                             (pushnew d vectors)
                             (push (copy-seq d) client-got)
                             (when (>= (incf n (length d)) (length data))
                               (as:close-socket s)
                               (as:close-socket-server server)))
                           :data data :read-buffer :reuse)))
      (is (equalp data (concat-octets (reverse client-got))))
      (is (= 1 (length vectors))))))

(test pipe-server-errors
  "A path in use (a live server, or any file): SOCKET-ADDRESS-IN-USE; a
missing directory: FILESYSTEM-ENOENT; no permission: FILESYSTEM-EACCES;
all signalled at once, whatever the event-cb."
  (with-temp-dir (dir)
    (let ((path (concatenate 'string dir "s")))
      (with-test-loop ()
        (let ((server (as:pipe-server path nil)))
          (signals as:socket-address-in-use
            (as:pipe-server path nil :event-cb (lambda (e) (declare (ignore e)))))
          (is (probe-file path) "the failed server removed nothing")
          (signals as:socket-address-in-use
            (as:pipe-server (touch (concatenate 'string dir "file")) nil))
          (signals as:filesystem-enoent
            (as:pipe-server (concatenate 'string dir "no/such/dir/s") nil))
          (signals error (as:pipe-server "" nil))
          (signals error (as:pipe-server (make-string 200 :initial-element #\a) nil))
          (signals error (as:pipe-connect 42 nil))
          (unless (zerop (sb-unix:unix-getuid)) ; root may write anywhere
            (let ((locked (concatenate 'string dir "locked/")))
              (ensure-directories-exist locked)
              (uiop:run-program (list "chmod" "500" locked))
              (signals as:filesystem-eacces
                (as:pipe-server (concatenate 'string locked "s") nil))))
          (as:close-socket-server server))))))

(test pipe-server-removes-only-its-file
  "Closing a pipe server removes its own socket file, and not a file that
someone else put at the path meanwhile."
  (with-temp-dir (dir)
    (let ((path (concatenate 'string dir "s")))
      (with-test-loop ()
        (let ((server (as:pipe-server path nil)))
          (is (probe-file path))
          (delete-file path)
          (touch path)
          (as:close-socket-server server)))
      (is (probe-file path) "the other file survived")
      (delete-file path)
      (with-test-loop ()
        (as:close-tcp-server (as:pipe-server (pathname path) nil)))
      (is (null (probe-file path)) "the server's own file is gone"))))

(test pipe-socket-functions
  "Every socket function works on pipes: direction, timeouts, pausing,
writing to a closed pipe, labels in messages."
  (with-temp-dir (dir)
    (let ((path (concatenate 'string dir "s"))
          (accepted nil) (events '()) (client nil) (got "") (paused-ok nil))
      (with-test-loop ()
        (let ((server nil))
          (setf server
                (as:pipe-server path
                                (lambda (s d)
                                  (declare (ignore s))
                                  (setf got (concatenate 'string got (text d))))
                                :connect-cb
                                (lambda (s)
                                  (setf accepted s)
                                  (as:disable-socket s :read t)
                                  (as:with-delay (0.1)
                                    (setf paused-ok (string= got ""))
                                    (as:enable-socket s :read t)
                                    (as:with-delay (0.1)
                                      (as:close-socket-server server))))))
          (setf client
                (as:pipe-connect path nil
                                 :event-cb (lambda (e) (push e events))
                                 :connect-cb (lambda (s)
                                               (as:set-socket-timeouts s 0.4 nil)
                                               (as:write-socket-data s "a"))))))
      (is (typep accepted 'as:pipe))
      (is (eq :in (cl-async-ext:socket-direction accepted)))
      (is (eq :out (cl-async-ext:socket-direction client)))
      (is-true paused-ok "no read while the accepted pipe was paused")
      (is (equal "a" got))
      (is (= 1 (length events)))
      (is (typep (first events) 'as:socket-timeout) "the read timeout fired")
      (is (search path (princ-to-string (first events))))
      (is (search path (princ-to-string client)))
      (is (as:socket-closed-p client))
      (signals as:socket-closed (as:write-socket-data client "late")))))
