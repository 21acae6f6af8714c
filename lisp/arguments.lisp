;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; arguments.lisp --- checking what callers pass: unknown keywords and
;;;; values of the wrong kind give a condition that names the keyword, what
;;;; it takes and, for a misspelt keyword, the one meant.

(in-package #:cl-async)

(define-condition argument-error (program-error simple-error)
  ((function :initarg :function :initform nil :reader argument-error-function)
   (argument :initarg :argument :initform nil :reader argument-error-argument))
  (:documentation "A function of cl-async was called with an argument it
does not take, or with a value it cannot use.  The message names the
function, the argument and what it takes."))

(setf (documentation 'argument-error-function 'function)
      "The function an ARGUMENT-ERROR is about."
      (documentation 'argument-error-argument 'function)
      "The argument (a keyword, or a parameter name) an ARGUMENT-ERROR is
about.")

(defun argument-error (function argument control &rest args)
  "Signals an ARGUMENT-ERROR about ARGUMENT (a keyword, or the name of a
parameter) of FUNCTION; CONTROL and ARGS say what is wrong, after
\"FUNCTION ARGUMENT: \"."
  (error 'argument-error :function function :argument argument
                         :format-control "~(~a~)~@[ ~(~a~)~]: ~?"
                         :format-arguments (list function
                                                 (if (keywordp argument)
                                                     (prin1-to-string argument)
                                                     argument)
                                                 control args)))

(defun edit-distance (a b)
  (let* ((n (length b))
         (row (make-array (1+ n) :initial-contents (loop :for i :to n :collect i))))
    (loop :for i :from 1 :to (length a)
          :do (let ((prev (aref row 0)))
                (setf (aref row 0) i)
                (loop :for j :from 1 :to n
                      :do (let ((old (aref row j)))
                            (setf (aref row j)
                                  (min (1+ (aref row j)) (1+ (aref row (1- j)))
                                       (+ prev (if (char-equal (char a (1- i))
                                                               (char b (1- j)))
                                                   0 1))))
                            (setf prev old)))))
    (aref row n)))

(defun closest-keyword (keyword allowed)
  "The keyword of ALLOWED that KEYWORD most likely misspells, or nil."
  (let* ((name (symbol-name keyword))
         (best nil) (best-d nil))
    (dolist (k allowed)
      (let* ((kn (symbol-name k))
             (d (cond ((or (search name kn) (search kn name)) 1)
                      ((>= (or (mismatch name kn) (min (length name) (length kn))) 4)
                       2)
                      (t (edit-distance name kn)))))
        (when (and (<= d (max 2 (ceiling (length kn) 3)))
                   (or (null best-d) (< d best-d)))
          (setf best k best-d d))))
    best))

(defun check-keywords (function args allowed)
  "Signals an ARGUMENT-ERROR unless ARGS is a property list of keywords
from ALLOWED (what FUNCTION takes), as CL functions do for &key, but naming
the keyword, the one probably meant, and the ones accepted."
  (when (oddp (length args))
    (argument-error function nil "odd number of keyword arguments in ~s: ~
                                  give :keyword value pairs." args))
  (loop :for (key nil) :on args :by #'cddr
        :unless (member key allowed)
          :do (let ((near (and (symbolp key) (closest-keyword key allowed))))
                (error 'argument-error
                       :function function :argument key
                       :format-control "~(~a~): unknown keyword ~(~s~)~@[ (did ~
                                        you mean ~(~s~)?)~]; it takes ~(~{~s~^ ~}~)."
                       :format-arguments (list function key near allowed))))
  args)
