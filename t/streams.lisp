;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; streams.lisp --- async streams (:stream t).

(in-package #:cl-async-ssl-test)

(def-suite streams :in cl-async-core :description "Async streams.")
(in-suite streams)

(test tcp-server-stream
  "Upstream's test: a :stream t server drains its stream with
read-sequence and gets the client's :data."
  (let ((got nil))
    (with-test-loop ()
      (let ((server nil))
        (setf server
              (as:tcp-server "127.0.0.1" 0
                             (lambda (sock stream)
                               (is (typep stream 'as:async-io-stream))
                               (is (typep sock 'as:socket))
                               (let ((buf (make-array 128 :element-type '(unsigned-byte 8))))
                                 (loop :for n := (read-sequence buf stream)
                                       :while (plusp n)
                                       :do (setf got (concatenate 'string got
                                                                  (text (subseq buf 0 n))))))
                               (as:close-socket sock)
                               (as:close-tcp-server server))
                             :stream t))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil :data "HELLO!")))
    (is (equal "HELLO!" got))))

(test stream-read-write-sequence
  "Upstream's test: a :stream t client writes with write-sequence before
it is connected; the server answers through a hand-made stream; the
client reads with read-sequence."
  (let ((server-got nil) (client-got nil))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0
                                    (lambda (sock data)
                                      (setf server-got (text data))
                                      (let ((out (make-instance 'as:async-io-stream :socket sock)))
                                        (write-sequence (octets "don't say that") out)))))
             (stream (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                     (lambda (sock stream)
                                       (let* ((buf (make-array 8096 :element-type '(unsigned-byte 8)))
                                              (n (read-sequence buf stream)))
                                         (setf client-got (text (subseq buf 0 n))))
                                       (as:close-socket sock)
                                       (as:close-tcp-server server))
                                     :stream t)))
        (is (typep stream 'as:async-io-stream))
        (write-sequence (octets "can i have your coat?") stream)))
    (is (equal "can i have your coat?" server-got))
    (is (equal "don't say that" client-got))))

(test read-sequence-honours-start
  (let ((result nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (sock stream)
                                     (let ((buf (make-array 10 :element-type '(unsigned-byte 8)
                                                               :initial-element 0)))
                                       (setf result (list (read-sequence buf stream :start 4)
                                                          (copy-seq buf))))
                                     (as:close-socket sock))
                                   :stream t)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                        :data "abc"
                        :event-cb (lambda (e) (declare (ignore e))
                                    (as:close-tcp-server server)))))
    (is (= 7 (first result)) "read-sequence returns the end position")
    (is (equalp #(0 0 0 0 97 98 99 0 0 0) (second result)))))

(test stream-read-byte-and-listen
  (let ((bytes '()) (listen-before nil) (listen-after nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (sock stream)
                                     (setf listen-before (listen stream))
                                     (loop :for b := (read-byte stream nil :eof)
                                           :until (eq b :eof)
                                           :do (push b bytes))
                                     (setf listen-after (listen stream))
                                     (as:close-socket sock))
                                   :stream t)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                        :data "xy"
                        :event-cb (lambda (e) (declare (ignore e))
                                    (as:close-tcp-server server)))))
    (is (equal '(120 121) (reverse bytes)))
    (is-true listen-before)
    (is-false listen-after)))

(test stream-accessors-and-close
  (let ((ok nil))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0 nil))
             (stream (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil :stream t))
             (sock (as:stream-socket stream)))
        (is (eq sock (as:socket stream)))
        (is (eq sock (as:streamish stream)))
        (is (equal '(unsigned-byte 8) (stream-element-type stream)))
        (is-true (open-stream-p stream))
        (close stream)
        (is-false (open-stream-p stream))
        (is-true (as:socket-closed-p sock))
        (setf ok t)
        (as:close-tcp-server server)))
    (is-true ok)))

(test stream-with-drain-gives-bytes
  ":stream t with :dont-drain-read-buffer nil still returns a stream, but
read-cb gets octet vectors."
  (let ((got nil))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (as:write-socket-data s d))))
             (stream (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                     (lambda (s d) (setf got d) (as:close-socket s)
                                       (as:close-tcp-server server))
                                     :stream t :dont-drain-read-buffer nil :data "raw")))
        (is (typep stream 'as:async-io-stream))))
    (is (typep got '(vector (unsigned-byte 8))))
    (is (equal "raw" (text got)))))

(test socket-functions-accept-the-stream
  "write-socket-data, close-socket and socket-closed-p take the stream that
:stream t returns in place of its socket."
  (let ((got nil) (closed nil))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (as:write-socket-data s d))))
             (stream (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                     (lambda (sock stream)
                                       (let* ((buf (make-array 64 :element-type '(unsigned-byte 8)))
                                              (n (read-sequence buf stream)))
                                         (setf got (text (subseq buf 0 n))))
                                       (as:close-socket stream)
                                       (setf closed (as:socket-closed-p stream))
                                       (as:close-tcp-server server)
                                       sock)
                                     :stream t)))
        (as:write-socket-data stream "via stream")))
    (is (equal "via stream" got))
    (is-true closed)))

(test stream-reads-many-events-into-one-buffer
  "A :stream t server reading 4 MiB as it arrives (many reads) gets every
byte in order, and the stream keeps one buffer: received data is copied
into it, not into a fresh vector per read."
  (let* ((data (random-octets (* 4 1024 1024) 5))
         (got (make-array (length data) :element-type '(unsigned-byte 8)))
         (pos 0) (reads 0) (buffers '()))
    (with-test-loop ()
      (let* ((server nil)
             (chunk (make-array 100000 :element-type '(unsigned-byte 8))))
        (setf server
              (as:tcp-server "127.0.0.1" 0
                             (lambda (sock stream)
                               (incf reads)
                               (pushnew (cl-async::stream-buffer stream) buffers)
                               (loop :for n := (read-sequence chunk stream)
                                     :while (plusp n)
                                     :do (replace got chunk :start1 pos :end2 n)
                                         (incf pos n))
                               (when (>= pos (length data))
                                 (as:close-socket sock)
                                 (as:close-tcp-server server)))
                             :stream t))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil :data data)))
    (is (= (length data) pos))
    (is (equalp data got))
    (is (> reads 4) "~d reads only" reads)
    (is (<= (length buffers) 3) "~d buffers for ~d reads" (length buffers) reads)))
