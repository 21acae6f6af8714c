;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; async-stream.lisp --- Gray streams over sockets.
;;;;
;;;; Reading never blocks: received bytes are appended to the stream's
;;;; buffer before the read-cb runs, and READ-SEQUENCE copies what is
;;;; there.  Writing goes through WRITE-SOCKET-DATA.

(in-package #:cl-async)

(defclass async-stream (trivial-gray-streams:fundamental-binary-stream)
  ((socket :initarg :socket :initarg :streamish :accessor stream-socket
           :documentation "The socket this stream reads and writes.")
   (buffer :accessor stream-buffer
           :initform (make-array 0 :element-type 'octet)
           :type (simple-array octet (*)))
   (start :accessor stream-buffer-start :initform 0 :type fixnum)
   (end :accessor stream-buffer-end :initform 0 :type fixnum))
  (:documentation "A binary stream over a socket.  Its element type is
octet."))

(defclass async-output-stream (async-stream
                               trivial-gray-streams:fundamental-binary-output-stream)
  ()
  (:documentation "An async stream for writing."))

(defclass async-input-stream (async-stream
                              trivial-gray-streams:fundamental-binary-input-stream)
  ()
  (:documentation "An async stream for reading."))

(defclass async-io-stream (async-input-stream async-output-stream)
  ()
  (:documentation "An async stream for reading and writing; what :stream t
gives."))

(defmethod streamish ((stream async-stream))
  (stream-socket stream))

(defmethod socket ((stream async-stream))
  (stream-socket stream))

(defun attach-stream (socket)
  "Gives SOCKET an async-io-stream (its read buffer is filled by reads)."
  (setf (socket-stream socket)
        (make-instance 'async-io-stream :socket socket)))

(defun stream-append-foreign (stream pointer length)
  "Appends the LENGTH bytes at POINTER (a read event's) to STREAM's read
buffer.  The buffer is the stream's own and grows as needed; bytes already
read are dropped to make room, so a stream that is read as data comes
reuses one buffer."
  (let* ((buf (stream-buffer stream))
         (start (stream-buffer-start stream))
         (end (stream-buffer-end stream))
         (live (- end start)))
    (declare (type (simple-array octet (*)) buf) (type fixnum start end live))
    (cond ((zerop live)
           (setf start 0 end 0))
          ((<= (+ end length) (length buf)))
          ((<= (+ live length) (length buf))
           (replace buf buf :start2 start :end2 end)
           (setf start 0 end live)))
    (when (> (+ end length) (length buf))
      (let ((new (make-array (max (+ live length) (* 2 (length buf)) 4096)
                             :element-type 'octet)))
        (replace new buf :start2 start :end2 end)
        (setf buf new start 0 end live)))
    (cl-async-ffi:copy-foreign-octets pointer length buf end)
    (setf (stream-buffer stream) buf
          (stream-buffer-start stream) start
          (stream-buffer-end stream) (+ end length))
    stream))

(defun stream-available (stream)
  (- (stream-buffer-end stream) (stream-buffer-start stream)))

(defmethod stream-element-type ((stream async-stream))
  '(unsigned-byte 8))

(defmethod open-stream-p ((stream async-stream))
  (not (socket-closed-p (stream-socket stream))))

(defmethod close ((stream async-stream) &key abort)
  (when abort
    (trivial-gray-streams:stream-clear-input stream))
  (close-socket (stream-socket stream))
  t)

(defmethod trivial-gray-streams:stream-read-sequence
    ((stream async-input-stream) sequence start end &key)
  (let* ((start (or start 0))
         (end (or end (length sequence)))
         (n (min (- end start) (stream-available stream)))
         (from (stream-buffer-start stream)))
    (replace sequence (stream-buffer stream) :start1 start :end1 (+ start n)
                                             :start2 from)
    (setf (stream-buffer-start stream) (+ from n))
    (+ start n)))

(defmethod trivial-gray-streams:stream-read-byte ((stream async-input-stream))
  (if (plusp (stream-available stream))
      (prog1 (aref (stream-buffer stream) (stream-buffer-start stream))
        (incf (stream-buffer-start stream)))
      :eof))

(defmethod trivial-gray-streams:stream-listen ((stream async-input-stream))
  (plusp (stream-available stream)))

(defmethod trivial-gray-streams:stream-clear-input ((stream async-input-stream))
  (setf (stream-buffer-start stream) 0
        (stream-buffer-end stream) 0)
  nil)

(defmethod trivial-gray-streams:stream-write-sequence
    ((stream async-output-stream) sequence start end &key)
  (if (stringp sequence)
      (write-socket-data (stream-socket stream)
                         (babel:string-to-octets sequence :encoding :utf-8
                                                          :start (or start 0)
                                                          :end end))
      (write-socket-data (stream-socket stream) sequence
                         :start (or start 0) :end end))
  sequence)

(defmethod trivial-gray-streams:stream-write-byte ((stream async-output-stream)
                                                    byte)
  (write-socket-data (stream-socket stream)
                     (make-array 1 :element-type 'octet :initial-element byte))
  byte)

(defmethod trivial-gray-streams:stream-force-output ((stream async-output-stream))
  nil)

(defmethod trivial-gray-streams:stream-finish-output ((stream async-output-stream))
  nil)

(defmethod trivial-gray-streams:stream-clear-output ((stream async-output-stream))
  nil)

(setf (documentation 'stream-socket 'function)
      "The socket an ASYNC-STREAM reads from and writes to.")

;;; A stream stands for its socket in the socket functions.
(defmethod streamish-write ((stream async-stream) data &rest args)
  (apply #'streamish-write (stream-socket stream) data args))

(defmethod close-streamish ((stream async-stream) &key force)
  (close-streamish (stream-socket stream) :force force))

(defmethod streamish-closed-p ((stream async-stream))
  (streamish-closed-p (stream-socket stream)))
